"""Account names: normalised, and refused when invisible, control or mixed-script
characters or a look-alike of another name would let them pass for it."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

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
