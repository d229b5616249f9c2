"""MUSE six-way evaluation (Shi et al. 2024, "MUSE: Machine Unlearning Six-Way Evaluation").

C1 VerbMem_f, C2 KnowMem_f, C3 PrivLeak, C4 KnowMem_r are metrics in the registry (`metrics()`);
C5 scalability and C6 sustainability are protocols over several checkpoints (`protocols.py`).
`evaluate_models` runs them and `write_report` writes results.json / .md / .png.
"""

from eval.muse.privleak import MUSE_RETRAIN_AUC, RetrainReference, resolve_retrain_auc
from eval.muse.protocols import PROTOCOLS
from eval.muse.registry import METRICS, Metric, SuiteSettings, metrics, register_metric
from eval.muse.report import render_markdown, write_report
from eval.muse.suite import (DEFAULT_METRICS, ModelEntry, evaluate_models, load_suite_data,
                             resolve_metrics)

__all__ = ["DEFAULT_METRICS", "METRICS", "MUSE_RETRAIN_AUC", "Metric", "ModelEntry", "PROTOCOLS",
           "RetrainReference", "SuiteSettings", "evaluate_models", "load_suite_data", "metrics",
           "register_metric", "render_markdown", "resolve_metrics", "resolve_retrain_auc",
           "write_report"]
