"""Account names: normalised, and refused when invisible, control or mixed-script
characters or a look-alike of another name would let them pass for it."""

from __future__ import annotations

import json
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from botcore.accounts import names
from botcore.accounts.names import UnclearName, normalise, skeleton

ADMIN_LOOKALIKES = (
    "\u0430dmin",  # Cyrillic a
    "adm\u0131n",  # dotless i
    "ADM\u0130N",  # dotted capital I
    "ADMIN",
    "\uff41\uff44\uff4d\uff49\uff4e",  # fullwidth
    "adrnin",  # r n for m
)


class NormaliseTests(SynchronousTestCase):
    """What names are accepted, and as what."""

    def test_ordinary_names_kept(self) -> None:
        """Names in one script, with digits and a little ASCII punctuation, are kept."""
        for name in ("alice", "Bob_2", "jos\u00e9", "\u0418\u0432\u0430\u043d", "\u674e\u660e",
                     "[away]", "o'neil"):  # fmt: skip
            self.assertEqual(normalise(name), name)

    def test_nfkc(self) -> None:
        """Compatibility forms become their plain letters."""
        self.assertEqual(normalise("\uff41\uff44\uff4d\uff49\uff4e"), "admin")

    def test_refused(self) -> None:
        """Invisible, format, control, space, symbol and mixed-script names are refused,
        and so is a combining mark with no letter before it."""
        for name in ("admin\u200b", "ad\u200dmin", "admin\u202e", "ad min", "ad\x00min",
                     "\u0430dmin", "admin\u2028", "adm\u00a0in", "\u0301admin", "adm\u2665n",
                     ""):  # fmt: skip
            with self.assertRaises(UnclearName, msg=repr(name)):
                normalise(name)


class SkeletonTests(SynchronousTestCase):
    """Names that look alike have one skeleton."""

    def test_lookalikes_share_skeleton(self) -> None:
        """Every look-alike of admin has admin's skeleton; a different name does not."""
        for name in ADMIN_LOOKALIKES:
            self.assertEqual(skeleton(name), skeleton("admin"), repr(name))
        self.assertNotEqual(skeleton("adman"), skeleton("admin"))
        self.assertEqual(skeleton("paypa1"), skeleton("paypal"))


class PrototypesTests(SynchronousTestCase):
    """The look-alike table shipped beside the module is the installed data's."""

    def built(self) -> dict[str, str]:
        return names.build_prototypes(json.loads(names._confusables().read_bytes()))

    def test_shipped_table_is_current(self) -> None:
        """prototypes.json is what the installed confusables.json builds, and is used."""
        path = Path(names.__file__).with_name(names.PROTOTYPES)
        shipped = json.loads(path.read_text("utf-8"))
        self.assertEqual(
            shipped["prototypes"],
            self.built(),
            "prototypes.json is stale: run "
            "python -c 'from botcore.accounts import names; names.write_prototypes()'",
        )
        built = self.built()

        def build(data: object) -> dict[str, str]:
            raise AssertionError("the shipped table was not used")

        self.patch(names, "build_prototypes", build)
        self.assertEqual(names.load_prototypes(path), built)

    def test_other_data_rebuilt(self) -> None:
        """A table written from other data, or none, or a broken one, is not trusted:
        the table is built from the installed data."""
        folder = Path(self.mktemp())
        folder.mkdir()
        written = names.write_prototypes(folder / "prototypes.json")
        table = json.loads(written.read_text("utf-8"))
        table["source"] = "0" * 64
        table["prototypes"]["\u0430"] = "x"
        stale = folder / "stale.json"
        stale.write_text(json.dumps(table), "utf-8")
        broken = folder / "broken.json"
        broken.write_text("{", "utf-8")
        for path in (stale, broken, folder / "missing.json"):
            self.assertEqual(names.load_prototypes(path), self.built(), path.name)
        self.assertEqual(names.load_prototypes(written), self.built())
