"""make's GPU= variable, parsed once from the command line (`cli.add_gpu`): which devices a
Caffe run uses. Pure parsing; whether the build can use them is dri_hep2.engine's question."""
from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import UserError


@dataclass(frozen=True)
class Gpus:
    """make's GPU=: empty for the CPU, a device id (`0`), a list (`0,1`) or `all`.

    Parsed once, from the command line; `flag` is what `caffe train -gpu` takes, `first` the
    device a pycaffe process (evaluation, prediction) uses.
    """
    ids: tuple[int, ...] = ()
    all: bool = False

    _PATTERN = re.compile(r"^(all|\d+(,\d+)*)$")

    @classmethod
    def parse(cls, text: str | None) -> "Gpus":
        text = (text or "").strip()
        if not text:
            return cls()
        if not cls._PATTERN.match(text):
            raise UserError(f"GPU={text!r}: give a device id or list like 0 or 0,1 (or all); "
                            "leave it empty for the CPU")
        if text == "all":
            return cls(all=True)
        return cls(tuple(int(i) for i in text.split(",")))

    def __bool__(self) -> bool:
        return self.all or bool(self.ids)

    def __str__(self) -> str:
        return self.flag

    @property
    def flag(self) -> str:
        return "all" if self.all else ",".join(map(str, self.ids))

    @property
    def first(self) -> int | None:
        if self.all:
            return 0
        return self.ids[0] if self.ids else None
