"""The knobs of the nets: each an unknown of the lost Fig. 1 / Fig. 2 with our default and its
ledger row. One value of this type goes to every builder (train_val, deploy, benchmark), to
`make nets` (`tools/make_nets.py`) and to a training run (`make train NET_ARGS=...`), which
records it in its manifest."""
from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, fields

from .. import ledger


@dataclass(frozen=True)
class NetOptions:
    shortcut: str = ledger.SHORTCUT              # N2: identity shortcut between widths
    dri_2_3_1x1: int | None = None               # N12: None keeps Table 1's printed 244
    # N4: Table 1 blocks the auxiliary heads FC1 and FC2 follow; None: the last block of the
    # stages ledger.AUX_AFTER_STAGES (DRI 1-2 and DRI 2-3 in DRI).
    aux_after: tuple[str, str] | None = None
    main_dropout: float = ledger.MAIN_DROPOUT    # N6: 0 leaves the main head without dropout
    # N17: weight decay of the Scale layers' gamma and beta; None: Caffe's default (1).
    scale_decay_mult: float | None = ledger.SCALE_DECAY_MULT

    def __post_init__(self):
        if self.shortcut not in ledger.SHORTCUTS:
            raise ValueError(f"unknown shortcut form {self.shortcut!r}; choose one of "
                             f"{ledger.SHORTCUTS}")
        if self.aux_after is not None:
            object.__setattr__(self, "aux_after", tuple(self.aux_after))
            if len(self.aux_after) != 2:
                raise ValueError(f"aux_after names two blocks (FC1, FC2), got {self.aux_after}")
        if not 0 <= self.main_dropout < 1:
            raise ValueError(f"main dropout {self.main_dropout} must be in [0, 1)")

    def changed(self) -> dict:
        """The options that differ from the defaults (what a manifest records)."""
        default = NetOptions()
        return {k: v for k, v in asdict(self).items() if getattr(default, k) != v}


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The knobs as command-line options (make_nets.py, train.py)."""
    ap.add_argument("--shortcut", choices=ledger.SHORTCUTS, default=ledger.SHORTCUT,
                    help=f"shortcut between blobs of different widths (ledger N2; default "
                         f"{ledger.SHORTCUT})")
    ap.add_argument("--dri-2-3-1x1", type=int, default=None,
                    help="DRI 2-3's 1x1 width in place of the printed 244 (ledger N12)")
    ap.add_argument("--aux-after", type=lambda s: tuple(s.split(",")), default=None,
                    metavar="BLOCK,BLOCK",
                    help="Table 1 blocks FC1 and FC2 follow, e.g. dri_2_1,dri_2_3 "
                         "(GoogLeNet's placement, ledger N4); default: the last block of "
                         "stages 1 and 2")
    ap.add_argument("--main-dropout", type=float, default=ledger.MAIN_DROPOUT,
                    help=f"dropout before FC3 (ledger N6; default {ledger.MAIN_DROPOUT}; "
                         "0: none)")
    ap.add_argument("--scale-decay-mult", type=float, default=ledger.SCALE_DECAY_MULT,
                    help="weight decay multiplier of the Scale layers' gamma and beta "
                         "(ledger N17; default: Caffe's, 1)")


def from_arguments(args: argparse.Namespace) -> NetOptions:
    return NetOptions(**{f.name: getattr(args, f.name) for f in fields(NetOptions)})
