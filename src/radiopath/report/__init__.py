"""The study report: one self-contained ``report.html`` per run (figures embedded)."""

from radiopath.report.html import ReportError, render_report, write_report

__all__ = ["ReportError", "render_report", "write_report"]
