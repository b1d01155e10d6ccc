"""A class list: the names a data set's labels stand for, in Caffe label order.

The paper's six I3A classes (Table 2's column order) are one class list; a data folder records
its own (`DataFolder.classes()`), a run records the one it was trained on (`RunDir.classes()`),
and the nets' classifier width, eval.json, the reports and the confusion plots follow it.
Caffe label = index in `names`.

Spellings are matched loosely (ASSUMPTIONS.md C1): case, spaces, hyphens and underscores are
ignored, so `fine speckled`, `Fine_Speckled` and `fine-speckled` are one class; `aliases` add
the other spellings copies of a data set use (`Nuclear membrane` for I3A's `NuMem`).
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from . import paper


def spelling_key(text: str) -> str:
    """How two spellings of a class are compared: lower case, letters and digits only."""
    return re.sub(r"[^0-9a-z]", "", text.strip().lower())


@dataclass(frozen=True)
class ClassList:
    key: str                          # "i3a", "icpr2012", "i3a-task2" or "custom"
    names: tuple[str, ...]
    abbrev: tuple[str, ...]
    aliases: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self):
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "abbrev", tuple(self.abbrev))
        if len(self.names) < 2 or len(self.abbrev) != len(self.names):
            raise ValueError(f"a class list needs two or more names, one abbreviation each: "
                             f"{self.names} / {self.abbrev}")
        keys = [spelling_key(n) for n in self.names]
        if len(set(keys)) != len(keys) or not all(keys):
            raise ValueError(f"class names must differ in letters or digits: {self.names}")

    def __len__(self) -> int:
        return len(self.names)

    @property
    def title(self) -> str:
        return {"i3a": "I3A Task 1 (the paper's six classes)", "icpr2012": "ICPR 2012 contest",
                "i3a-task2": "I3A Task 2 (seven classes)"}.get(self.key, "custom")

    def _lookup(self) -> dict[str, int]:
        table = {spelling_key(n): i for i, n in enumerate(self.names)}
        for spelling, name in self.aliases.items():
            table.setdefault(spelling_key(spelling), self.names.index(name))
        return table

    def label(self, raw: str) -> int:
        """Class name (any listed spelling) -> Caffe label; ValueError for anything else."""
        found = self._lookup().get(spelling_key(raw))
        if found is None:
            raise ValueError(f"unknown class label {raw.strip()!r} (expected one of "
                             f"{', '.join(self.names)})")
        return found

    def knows(self, spellings: Iterable[str]) -> bool:
        """Whether these spellings name exactly this list's classes, each once."""
        table = self._lookup()
        found = [table.get(spelling_key(s)) for s in spellings]
        return None not in found and sorted(found) == list(range(len(self)))

    def manifest(self) -> dict:
        """What a data folder's and a run's manifest record."""
        return {"key": self.key, "names": list(self.names), "abbrev": list(self.abbrev)}

    @classmethod
    def from_manifest(cls, entry: Mapping | None) -> "ClassList":
        """The class list a manifest recorded; I3A's for a manifest from before class lists
        were recorded (every such folder holds I3A's six classes)."""
        if not entry:
            return I3A
        known = KNOWN.get(entry.get("key"))
        if known is not None and list(known.names) == list(entry["names"]):
            return known
        return cls("custom", tuple(entry["names"]), tuple(entry["abbrev"]))


def custom(names: Iterable[str]) -> ClassList:
    """A class list of the given names in the given order, with short unique abbreviations:
    the initials of several words (`fine speckled` -> `FS`), else the first letters."""
    names = tuple(names)
    abbrev: list[str] = []
    for name in names:
        words = re.findall(r"[0-9A-Za-z]+", name)
        short = ("".join(w[0] for w in words).upper() if len(words) > 1
                 else name if len(name) <= 4 else name[:3].capitalize())
        candidate, n = short, 2
        while candidate in abbrev:
            candidate, n = f"{short}{n}", n + 1
        abbrev.append(candidate)
    return ClassList("custom", names, tuple(abbrev))


# The paper's classes (section 3.1, Table 2): labels as today, 0 = Homogeneous ... 5 = Golgi.
I3A = ClassList("i3a", paper.CLASSES, paper.CLASS_ABBREV,
                {"nuclear membrane": "NuMem"})
# The ICPR 2012 contest's six patterns, in the order its description lists them (ledger C1).
ICPR2012 = ClassList(
    "icpr2012",
    ("Homogeneous", "Fine speckled", "Coarse speckled", "Nucleolar", "Centromere",
     "Cytoplasmatic"),
    ("H", "FS", "CS", "N", "C", "Cy"),
    {"cytoplasmic": "Cytoplasmatic"})
# I3A Task 2's seven specimen patterns: I3A's six in Table 2's order (same labels 0-5), then
# mitotic spindle (ledger C1).
I3A_TASK2 = ClassList(
    "i3a-task2", paper.CLASSES + ("MitoticSp",), paper.CLASS_ABBREV + ("MS",),
    {"nuclear membrane": "NuMem", "mitotic spindle": "MitoticSp", "mitotic": "MitoticSp"})
KNOWN = {c.key: c for c in (I3A, ICPR2012, I3A_TASK2)}
