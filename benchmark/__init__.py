"""robbench: adversarial robustness that is not overstated, for random models above all.

Adaptive attacks with EOT through every random step, a per-example worst case chosen on
passes independent of the reported ones, three robust accuracies of a random model (expected,
majority, all-draws) with valid intervals, and gradient-masking checks; for robbench's ConvNet
and Short Run classifier, and for any ``torch.nn.Module`` (``robbench.evaluate``).
"""

from robbench import defenses  # noqa: E402
from robbench.api import diagnose, evaluate, load_model  # noqa: E402  (after the version)
from robbench.data.datasets import load_dataset  # noqa: E402
from robbench.defenses.bpda import bpda  # noqa: E402
from robbench.models.normalized import Normalized  # noqa: E402
from robbench.models.zoo import register_model  # noqa: E402
from robbench.report.evaluation_report import Report  # noqa: E402
from robbench.version import __version__

__all__ = ["Normalized", "Report", "__version__", "bpda", "defenses", "diagnose", "evaluate",
           "load_dataset", "load_model", "register_model"]
