"""Multi-center shift: see it (acquisition checks, feature shift per center) and, when asked,
harmonise it without labels (per-center standardisation, ComBat; AdaBN in finetune mode).

Submodules import their heavy dependencies lazily; importing this package does not import torch.
"""
