"""Named bundles of command-line settings, e.g. the thesis's SVHN protocol."""

from __future__ import annotations

import argparse

from robbench.attacks.budgets import THESIS_FGSM_PM1

# The thesis attacks with FGSM at eps = 0.01 ... 0.06 on its [-1, 1] image scale, i.e. half
# that in robbench's [0, 1] pixel units, on 1,000 test images (the svhn loader puts 100 per
# class first). Its models are the `svhn` registry defaults (arch, Ranger, 10k labels, ...).
PRESETS: dict[str, dict[str, object]] = {
    "thesis": {
        "dataset": "svhn",
        "attack": "fgsm",
        "eps": ",".join(f"{e / 2:g}" for e in THESIS_FGSM_PM1),
        "n": 1000,
    },
}


def apply_preset(args: argparse.Namespace) -> None:
    """Fill the options ``args.preset`` sets unless the user gave them; a conflict is an error.

    ``args.preset_parser`` is the (sub)parser that read ``args``, for its defaults.
    """
    name = getattr(args, "preset", None)
    if name is None:
        return
    for key, value in PRESETS[name].items():
        if not hasattr(args, key):
            continue
        given = getattr(args, key)
        if given in (args.preset_parser.get_default(key), value):
            setattr(args, key, value)
        elif key == "dataset":
            raise ValueError(f"--preset {name} runs on dataset {value!r}; got --dataset {given!r}")
