"""The bibliography in author–year form, matching the book's author–year citations.

sphinxcontrib-bibtex cites author–year in the text (``bibtex_reference_style: author_year``) but
labels the list with its formatting style's label style, numbers for ``plain``: the text said
"Schoenbauer et al. (2024)" and the list "[1]". This Sphinx extension registers the pybtex
formatting style ``authoryear``: pybtex's ``plain`` (same entries, same author–year–title
order) with labels "Surname year", "Surname and Surname year" or "Surname et al. year" (a letter
added where two entries would share one). ``_config.yml`` lists the extension and sets
``bibtex_default_style: authoryear``.

>>> from pybtex.database import Entry, Person
>>> def entry(year, *authors):
...     return Entry("article", fields={"year": year}, persons={"author": [Person(a) for a in authors]})
>>> list(AuthorYearLabels().format_labels([
...     entry("2024", "Schoenbauer, Matt", "Moro, Luca", "Lew, Ilan", "Howard, Mark"),
...     entry("2014", "Kingma, Diederik", "Ba, Jimmy"),
...     entry("2012", "Hinton, Geoffrey"),
...     entry("2015", "He, Kaiming", "Zhang, X", "Ren, S"),
...     entry("2015", "He, Kaiming", "Sun, J", "Ren, S"),
... ]))
['Schoenbauer et al. 2024', 'Kingma and Ba 2014', 'Hinton 2012', 'He et al. 2015a', 'He et al. 2015b']
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from pybtex.plugin import register_plugin
from pybtex.style.formatting.plain import Style as PlainStyle
from pybtex.style.labels import BaseLabelStyle

__all__ = ["AuthorYearLabels", "AuthorYearStyle", "setup"]


def _surname(person: Any) -> str:
    return " ".join(person.last_names).replace("{", "").replace("}", "")


def _label(entry: Any) -> str:
    people = entry.persons.get("author") or entry.persons.get("editor") or []
    year = entry.fields.get("year", "n.d.")
    if not people:
        names = entry.fields.get("organization") or entry.fields.get("title", entry.key or "")
    elif len(people) == 1:
        names = _surname(people[0])
    elif len(people) == 2:
        names = f"{_surname(people[0])} and {_surname(people[1])}"
    else:
        names = f"{_surname(people[0])} et al."
    return f"{names} {year}"


class AuthorYearLabels(BaseLabelStyle):
    """pybtex label style: "Surname year", with a, b, ... where two entries would share a label."""

    def format_labels(self, sorted_entries):
        labels = [_label(entry) for entry in sorted_entries]
        counts, seen = Counter(labels), Counter()
        for label in labels:
            if counts[label] > 1:
                seen[label] += 1
                yield f"{label}{chr(ord('a') + seen[label] - 1)}"
            else:
                yield label


class AuthorYearStyle(PlainStyle):
    """pybtex's ``plain`` formatting with :class:`AuthorYearLabels`."""

    default_label_style = AuthorYearLabels


def setup(app: Any) -> dict[str, Any]:
    """Sphinx entry point: register the ``authoryear`` pybtex style before the bibliography is read."""
    register_plugin("pybtex.style.formatting", "authoryear", AuthorYearStyle)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
