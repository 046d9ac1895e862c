"""The one typed configuration of a study: every option of tile, extract, train, evaluate, report.

``RUN/config.yaml`` is a :class:`RunConfig` written fully resolved; ``radiopath tile``,
``extract`` and ``train`` take the same file with ``--config``, and ``evaluate``/``report``
read it back with the same model — there is no second, untyped view of a run's options.
Importing this module does not import torch.

Sections: ``protocol`` (folds, seed, threshold rule, the primary model), ``model`` (which
models, backbone, weights, heads), ``train`` (optimisation, compute and the augmented passes
of features mode), ``harmonization`` (label-free per-center harmonisation), one section per
modality that has options (``ultrasound``, ``cytology``: taken from the modality registry,
:mod:`radiopath.modalities`), and ``cache_dir``. Every key a ``config.yaml`` of an earlier
radiopath accepted is still accepted.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, create_model, field_validator, model_validator

from radiopath.config import StrictModel
from radiopath.errors import ConfigError
from radiopath.features.families import FEATURE_SETS, family_sections
from radiopath.modalities import MODALITIES, by_label, image_modalities, vector_modalities

#: How fusion models combine modality embeddings (``radiopath.models.fusion`` implements them).
FUSION_METHODS: tuple[str, ...] = ("late", "concat", "gated", "bilinear")
#: Suffix of a fusion model that also sees the clinical covariates.
CLINICAL_SUFFIX = "+clin"
#: The primary model when the config names none and it is trained.
DEFAULT_PRIMARY = "fusion_concat"


class ProtocolConfig(StrictModel):
    """Cross-validation, threshold and which model the study is about."""

    n_folds: int = Field(5, ge=2)
    seed: int = Field(0, ge=0, description="drives folds, inner splits, initialisation and shuffles")
    threshold_rule: Literal["youden", "sensitivity"] = "youden"
    target_sensitivity: float = Field(0.9, gt=0, le=1)
    primary_model: str | None = Field(
        None,
        description="the study's primary model, named before the run; the report, explanations and the "
        "deployed model lead with it (default: fusion_concat when trained, else the first fusion model, "
        "else the first model)",
    )


class HeadConfig(StrictModel):
    """Sizes and regularisation of everything after the backbone."""

    dim: int = Field(64, ge=4, description="embedding size per modality")
    pca_dim: int | None = Field(
        16,
        ge=2,
        description="features mode: project cached features on this many principal components, "
        "fitted on each training fold (a strong regulariser for small cohorts); None keeps all",
    )
    dropout: float = Field(0.25, ge=0, lt=1)
    us_pooling: Literal["mean", "attention"] = "mean"
    cytology_pooling: Literal["mean", "attention"] = "attention"
    late_mode: Literal["average", "stacked"] = "average"
    hidden: int = Field(64, ge=4)
    bilinear_rank: int = Field(16, ge=2)
    modality_dropout: float = Field(
        0.2, ge=0, lt=1, description="training: drop one modality with this probability"
    )


class ModelSpec(StrictModel):
    """One model of the study: a name, the modalities it sees (registry keys), how it fuses
    them, and its head: ``neural`` (encoders + fusion, trained by gradient descent) or
    ``signature`` (the radiomics signature: filters + L1 logistic regression on per-patient
    features, :mod:`radiopath.models.signature`)."""

    name: str
    modalities: list[str]
    fusion: Literal["none", "late", "concat", "gated", "bilinear"]
    head: Literal["neural", "signature"] = "neural"

    @field_validator("modalities")
    @classmethod
    def _registered(cls, v: list[str]) -> list[str]:
        unknown = [m for m in v if m not in MODALITIES]
        if unknown:
            raise ValueError(f"unknown modalities {unknown}; registered: {sorted(MODALITIES)}")
        return v

    @classmethod
    def preset(cls, name: str, clinical: bool = False) -> ModelSpec:
        """A named model: an image modality's label (``ultrasound``, ``cytology``) or
        ``fusion_<late|concat|gated|bilinear>`` over every image modality; ``clinical`` (or the
        suffix ``+clin``) adds the clinical covariates to a fusion model.

        Raises:
            ConfigError: an unknown name (the message lists every preset).
        """
        presets = model_presets()
        base = name.removesuffix(CLINICAL_SUFFIX)
        if base not in presets:
            raise ConfigError(
                f"unknown model '{name}'; choose from {sorted(presets)} "
                f"(fusion models may end in {CLINICAL_SUFFIX})"
            )
        modalities, fusion = presets[base]
        head = "signature" if base.endswith(SIGNATURE_SUFFIX) else "neural"
        if (clinical or name.endswith(CLINICAL_SUFFIX)) and fusion != "none":
            extra = [m.key for m in vector_modalities()]
            return cls(
                name=f"{base}{CLINICAL_SUFFIX}",
                modalities=[*modalities, *extra],
                fusion=fusion,
                head=head,  # type: ignore[arg-type]
            )
        return cls(name=base, modalities=list(modalities), fusion=fusion, head=head)  # type: ignore[arg-type]


#: Suffix of a model whose head is the radiomics signature (``ultrasound_signature``, …).
SIGNATURE_SUFFIX = "_signature"


def model_presets() -> dict[str, tuple[list[str], str]]:
    """Named models of a study: one per image modality, each fusion over all of them, and the
    radiomics signature of each modality (``<label>_signature``) and of all (``fusion_signature``)."""
    images = [m.key for m in image_modalities()]
    out: dict[str, tuple[list[str], str]] = {m.label: ([m.key], "none") for m in image_modalities()}
    if len(images) > 1:
        out.update({f"fusion_{f}": (list(images), f) for f in FUSION_METHODS})
    out.update({f"{m.label}{SIGNATURE_SUFFIX}": ([m.key], "none") for m in image_modalities()})
    if len(images) > 1:
        out[f"fusion{SIGNATURE_SUFFIX}"] = (list(images), "concat")
    return out


#: The study's models by default: the paper's single-modality baselines and every fusion.
DEFAULT_MODELS = [m.label for m in image_modalities()] + [f"fusion_{f}" for f in FUSION_METHODS]


class SignatureConfig(StrictModel):
    """The radiomics signature head (:class:`radiopath.models.signature.RadiomicsSignature`)."""

    max_correlation: float = Field(
        0.9, gt=0, le=1, description="|r| above which one of a feature pair is dropped"
    )
    inner_folds: int = Field(5, ge=2, description="inner cross-validation folds that choose the L1 penalty")
    n_bags: int = Field(50, ge=0, description="bootstrap refits averaged at the chosen penalty (0: one fit)")
    class_weight: Literal["balanced", "none"] = Field(
        "none",
        description="balanced weights miscalibrate (van den Goorbergh et al. 2022); none keeps prevalence",
    )
    clip: float | None = Field(3.0, gt=0, description="standardised values clipped at this many sd")


FeatureSetChoice = str | dict[str, str]


class ModelConfig(StrictModel):
    """Which models the study trains, on which backbone, weights and feature set."""

    backbone: str = Field("resnet101", description="registry name (resnet18…152) or timm:<name>")
    cytology_backbone: str | None = Field(None, description="a different backbone for tiles (default: same)")
    shared_backbone: bool = Field(False, description="finetune: one backbone instance for both modalities")
    weights: str = Field("imagenet", description="none | imagenet | path to .safetensors/.pth")
    models: list[str] = Field(default_factory=lambda: list(DEFAULT_MODELS))
    clinical: bool = Field(False, description="add clin_* covariates as a third input of fusion models")
    feature_set: FeatureSetChoice = Field(
        "hybrid",
        description="deep | handcrafted | hybrid for every modality, or per modality "
        "({ultrasound: handcrafted, cytology: hybrid}); features mode (finetune trains the backbone "
        "on the images). Default hybrid: the handcrafted block, measured at fixed µm per pixel, is "
        "the part least moved by another center's scanner; deep reproduces the ResNet-101 study",
    )
    head: HeadConfig = Field(default_factory=HeadConfig)
    signature: SignatureConfig = Field(default_factory=SignatureConfig)

    @field_validator("feature_set")
    @classmethod
    def _feature_set(cls, v: FeatureSetChoice) -> FeatureSetChoice:
        values = v.values() if isinstance(v, dict) else [v]
        bad = [x for x in values if x not in FEATURE_SETS]
        if bad:
            raise ValueError(f"feature_set must be one of {list(FEATURE_SETS)}, got {bad}")
        if isinstance(v, dict):
            unknown = [k for k in v if k not in MODALITIES and by_label(k) is None]
            if unknown:
                labels = [m.label for m in image_modalities()]
                raise ValueError(f"feature_set names unknown modalities {unknown}; use {labels}")
        return v

    def feature_set_of(self, modality: str) -> str:
        """The feature set of one modality (registry key), ``deep`` when a mapping leaves it out."""
        if isinstance(self.feature_set, str):
            return self.feature_set
        label = MODALITIES[modality].label
        return self.feature_set.get(label, self.feature_set.get(modality, "deep"))

    @field_validator("models")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        presets = model_presets()
        for name in v:
            if name.removesuffix(CLINICAL_SUFFIX) not in presets:
                raise ValueError(f"unknown model '{name}'; choose from {sorted(presets)}")
        if not v:
            raise ValueError("train at least one model")
        if len(set(v)) != len(v):
            raise ValueError(f"models listed twice: {v}")
        return v

    @field_validator("weights")
    @classmethod
    def _weights(cls, v: str) -> str:
        if v in ("none", "imagenet"):
            return v
        if Path(v).suffix.lower() not in (".safetensors", ".pth", ".pt", ".bin"):
            raise ValueError(
                f"weights must be 'none', 'imagenet' or a path to a .safetensors/.pth file, got {v!r}"
            )
        return v

    def specs(self) -> list[ModelSpec]:
        """The models of the study, in order."""
        return [ModelSpec.preset(name, clinical=self.clinical) for name in self.models]


class TrainConfig(StrictModel):
    """How heads (features mode) or whole networks (finetune mode) are trained."""

    mode: Literal["features", "finetune"] = "features"
    epochs: int = Field(80, ge=1)
    batch_size: int = Field(32, ge=2)
    lr: float = Field(2e-3, gt=0, description="learning rate of the heads")
    backbone_lr: float = Field(1e-4, gt=0, description="finetune: learning rate of the backbones")
    weight_decay: float = Field(0.05, ge=0)
    patience: int = Field(15, ge=1, description="epochs without validation improvement before stopping")
    min_epochs: int = Field(10, ge=0)
    class_weighted: bool = Field(
        False,
        description="weight positives by n_negative / n_positive; off by default: it shifts every "
        "predicted risk towards the positive class (miscalibration, van den Goorbergh et al. 2022)",
    )
    augment_passes: int = Field(
        2,
        ge=0,
        le=8,
        description="features mode: augmented passes of every development view and tile that extract "
        "caches (ultrasound.augment, cytology.augment) and training draws from per epoch and patient, "
        "with the clean features; 0: no augmentation",
    )
    inner_val_fraction: float = Field(
        0.2, gt=0, lt=0.5, description="share of training patients for early stopping"
    )
    checkpoint_every: int = Field(1, ge=1)
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto",
        description="backbones: bf16 autocast where the hardware has native bf16 (auto); heads are fp32",
    )
    channels_last: bool = True
    compile: bool = Field(False, description="torch.compile the backbone for feature extraction")
    extract_batch_size: int = Field(
        16,
        ge=1,
        description="images per backbone pass in feature extraction; every pass has exactly this many "
        "(the last one padded), so an image's features never depend on what else is in the batch",
    )

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if v in ("auto", "cpu", "cuda") or (v.startswith("cuda:") and v[5:].isdigit()):
            return v
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {v!r}")


class HarmonizationConfig(StrictModel):
    """Label-free harmonisation of features per center (:mod:`radiopath.shift.harmonize`).

    Transductive: each center's adjustment is estimated from that center's own unlabelled
    features (external centers included) and mapped onto the development cohort's statistics;
    the methods text and the report say so wherever it was used. Off by default.
    """

    method: Literal["none", "standardize", "combat", "adabn"] = Field(
        "none",
        description="features mode: none | standardize (per-center mean and sd) | combat (the same "
        "with empirical-Bayes shrinkage, Johnson et al. 2007; Fortin et al. 2018), per feature of every "
        "image modality and feature set; finetune mode: adabn (each center's external patients scored "
        "with the backbones' BatchNorm statistics re-estimated on that center's images, Li et al. 2018)",
    )
    min_patients: int = Field(
        20,
        ge=2,
        description="fewest patients a center needs for its own adjustment; smaller centers get the "
        "run's recorded one, or none",
    )


class _RunConfigBase(StrictModel):
    """Everything a run does; written fully resolved to ``RUN/config.yaml``."""

    protocol: ProtocolConfig = Field(default_factory=ProtocolConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    harmonization: HarmonizationConfig = Field(default_factory=HarmonizationConfig)
    cache_dir: str | None = Field(
        None, description="feature and tile cache (default: ~/.cache/radiopath or $RADIOPATH_CACHE)"
    )

    @model_validator(mode="after")
    def _primary_is_trained(self) -> _RunConfigBase:
        primary = self.protocol.primary_model
        if primary is not None and primary not in self.model.models:
            raise ValueError(
                f"protocol.primary_model '{primary}' is not among model.models {self.model.models}; "
                "name one of them, or leave it out for the default"
            )
        return self

    def primary_model(self) -> str:
        """The study's primary model (see ``protocol.primary_model``)."""
        return resolve_primary(self.protocol.primary_model, self.model.models)

    def resolved(self) -> Any:
        """A copy with every default that depends on other options made explicit."""
        out = self.model_copy(deep=True)
        out.protocol.primary_model = self.primary_model()
        return out


def resolve_primary(primary: str | None, models: list[str]) -> str:
    """``primary`` when given, else ``fusion_concat`` if trained, else the first fusion, else the first."""
    if primary is not None:
        return primary
    if DEFAULT_PRIMARY in models:
        return DEFAULT_PRIMARY
    return next((m for m in models if m.startswith("fusion_")), models[0])


def _modality_sections() -> dict[str, Any]:
    """One RunConfig field per registered modality with options, then per feature family."""
    out: dict[str, Any] = {
        m.section: (m.options, Field(default_factory=m.options))
        for m in MODALITIES.values()
        if m.section and m.options is not None
    }
    out.update({name: (opts, Field(default_factory=opts)) for name, opts in family_sections().items()})
    return out


if TYPE_CHECKING:  # what the registries add, spelled out for type checkers
    from radiopath.features.pathomics import PathomicsConfig
    from radiopath.features.radiomics import RadiomicsConfig
    from radiopath.modalities.cytology import CytologyConfig
    from radiopath.ultrasound.config import UltrasoundConfig

    class RunConfig(_RunConfigBase):
        ultrasound: UltrasoundConfig
        cytology: CytologyConfig
        radiomics: RadiomicsConfig
        pathomics: PathomicsConfig

        def resolved(self) -> RunConfig: ...

else:
    RunConfig = create_model(
        "RunConfig",
        __base__=_RunConfigBase,
        __module__=__name__,
        __doc__=_RunConfigBase.__doc__,
        **_modality_sections(),
    )


def fast_profile() -> RunConfig:
    """The demo's settings: small inputs and few tiles so a 2-core CPU finishes in minutes.

    Same protocol and models as the default; the backbone sees 112-px crops of ultrasound
    views and the 8 best tiles per slide (224 px at 0.5 µm/px, downsampled to 112) with
    random weights, since pretrained weights cannot be assumed offline. Ultrasound crops are
    histogram-equalised: the synthetic cohort has no burned-in marks (the reason it is off by
    default), and it evens out the external scanners' gain and gamma (on the 300-patient demo
    cohort it raised the external ultrasound-only AUC from 0.56 to 0.65 and fusion's from
    0.74-0.78 to 0.76-0.82).
    """
    cfg = RunConfig()
    cfg.model.weights = "none"
    cfg.ultrasound.size = 112
    cfg.cytology.input_size = 112
    cfg.cytology.tiling.top_k = 8
    cfg.ultrasound.intensity.equalize = "crop"
    return cfg


def read_run_config(run: str | Path) -> RunConfig | None:
    """``RUN/config.yaml`` as a :class:`RunConfig`; None when the run has none.

    Raises:
        ConfigError: the file exists but is not a valid configuration (names file and key).
    """
    path = Path(run) / "config.yaml"
    if not path.is_file():
        return None
    return RunConfig.from_yaml(path)
