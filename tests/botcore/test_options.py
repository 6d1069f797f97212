"""Tests for botcore.options: parsing and error text of every option type, bounds,
defaults, collecting options through inheritance, and reading values back."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from botcore.options import (
    BoolOption,
    ChoiceOption,
    DictOption,
    FloatOption,
    IntOption,
    ListOption,
    ModeOption,
    Option,
    TemplateOption,
    TimezoneOption,
    defaults_of,
    options_of,
)


class ParseTests(SynchronousTestCase):
    """Each option type's parsing and its 'expected ..., found ...' errors."""

    def assertRefused(self, option, raw, message):
        with self.assertRaises(ValueError) as raised:
            option.parse(raw)
        self.assertEqual(str(raised.exception), message)

    def test_string(self):
        """A string option keeps the text as written; None formats as empty."""
        option = Option("help")
        self.assertEqual(option.parse(" a b "), " a b ")
        self.assertEqual(option.format(None), "")

    def test_int(self):
        """Integers parse with surrounding space; anything else is refused."""
        option = IntOption("help")
        self.assertEqual(option.parse(" 42 "), 42)
        self.assertEqual(option.parse("-3"), -3)
        self.assertRefused(option, "4x", "expected an integer, found '4x'")
        self.assertRefused(option, "1.5", "expected an integer, found '1.5'")
        self.assertRefused(option, "", "expected an integer, found ''")

    def test_int_bounds(self):
        """min and max are inclusive; outside them the value is refused with the bound."""
        option = IntOption("help", min=1, max=10)
        self.assertEqual((option.parse("1"), option.parse("10")), (1, 10))
        self.assertRefused(option, "0", "expected a number >= 1, found '0'")
        self.assertRefused(option, "11", "expected a number <= 10, found '11'")

    def test_float(self):
        """Numbers parse as floats; words and non-finite numbers are refused."""
        option = FloatOption("help")
        self.assertEqual(option.parse("1.5"), 1.5)
        self.assertEqual(option.parse("2"), 2.0)
        self.assertRefused(option, "fast", "expected a number, found 'fast'")
        self.assertRefused(option, "nan", "expected a finite number, found 'nan'")
        self.assertRefused(option, "-inf", "expected a finite number, found '-inf'")

    def test_float_bounds(self):
        """Float bounds work like integer bounds."""
        option = FloatOption("help", min=0, max=1)
        self.assertEqual(option.parse("0.5"), 0.5)
        self.assertRefused(option, "-0.1", "expected a number >= 0, found '-0.1'")
        self.assertRefused(option, "1.01", "expected a number <= 1, found '1.01'")

    def test_bool(self):
        """yes/no, true/false, on/off, 1/0 in any case; anything else is refused."""
        option = BoolOption("help")
        for word in ("yes", "TRUE", "On", "1", " yes "):
            self.assertIs(option.parse(word), True, word)
        for word in ("no", "False", "OFF", "0"):
            self.assertIs(option.parse(word), False, word)
        self.assertRefused(option, "maybe", "expected yes or no, found 'maybe'")
        self.assertEqual((option.format(True), option.format(False)), ("yes", "no"))

    def test_list(self):
        """Lists split on commas and new lines, dropping blanks."""
        option = ListOption("help")
        self.assertEqual(option.parse("a, b\n c,, \n"), ["a", "b", "c"])
        self.assertEqual(option.parse(""), [])
        self.assertEqual(option.format(["a", "b"]), "a, b")

    def test_dict(self):
        """Mappings take 'k = v' or 'k: v' entries, comma- or line-separated."""
        option = DictOption("help")
        self.assertEqual(option.parse("a = 1, b: 2\n c=x=y\n"), {"a": "1", "b": "2", "c": "x=y"})
        self.assertEqual(option.parse(""), {})
        self.assertEqual(option.format({"a": "1"}), "a = 1")

    def test_dict_refused(self):
        """An entry without a separator or without a key is refused."""
        option = DictOption("help")
        self.assertRefused(
            option, "a = 1, lonely", "expected 'key = value' entries, found 'lonely'"
        )
        self.assertRefused(option, "= 1", "expected 'key = value' entries, found '= 1'")

    def test_choice(self):
        """A choice parses case-insensitively to the declared spelling; others are refused."""
        option = ChoiceOption("help", "info", choices=("debug", "info"))
        self.assertEqual(option.parse(" DEBUG "), "debug")
        self.assertRefused(option, "loud", "expected one of debug, info, found 'loud'")


class CheckedValueTests(SynchronousTestCase):
    """Options whose values would otherwise only fail when the plugin starts (issue 12,
    item 17): time zones, file modes, path templates."""

    def assertRefused(self, option, raw, message):
        with self.assertRaises(ValueError) as raised:
            option.parse(raw)
        self.assertIn(message, str(raised.exception))

    def test_timezone(self):
        """A zone of the system's database is kept by name; others are refused."""
        option = TimezoneOption("zone", "UTC")
        self.assertEqual(option.parse(" Europe/Paris "), "Europe/Paris")
        self.assertEqual(option.parse("UTC"), "UTC")
        for raw in ("Mars/Olympus", "", "../../etc/passwd", "Europe/Paris\x00"):
            self.assertRefused(option, raw, "expected a time zone such as Europe/Paris")

    def test_mode(self):
        """An octal mode 0..0777 is the number; 999, 01000, -1 and words are refused."""
        option = ModeOption("mode", 0o644)
        self.assertEqual(option.parse("0640"), 0o640)
        self.assertEqual(option.parse("600"), 0o600)
        self.assertEqual(option.format(0o644), "0644")
        for raw in ("999", "01000", "-1", "rw-r--r--", ""):
            self.assertRefused(option, raw, "expected an octal file mode")

    def test_template(self):
        """Only the named fields, without conversions or format specs."""
        option = TemplateOption("path", "x", fields=("source", "day"))
        self.assertEqual(option.parse("logs/{source}/{day}.log"), "logs/{source}/{day}.log")
        self.assertEqual(option.parse("plain"), "plain")
        self.assertRefused(option, "{nick}", "expected only the fields {source}, {day}")
        self.assertRefused(option, "{}", "found {}")
        self.assertRefused(option, "{0}", "found {0}")
        self.assertRefused(option, "{source.__class__}", "found {source.__class__}")
        self.assertRefused(option, "{day:>99999}", "found {day:>99999}")
        self.assertRefused(option, "{day!r}", "found {day!r}")
        self.assertRefused(option, "{source", "expected a template")
        self.assertRefused(option, "}", "expected a template")


class Declared:
    size = IntOption("How big.", 3)
    colour = Option("Which colour.", "red", name="color")
    tags = ListOption("Labels.", [])


class Derived(Declared):
    size = IntOption("How big, bigger.", 5)
    fast = BoolOption("Hurry.", False)


class Fixed(Derived):
    # A subclass may pin a setting: then it is no longer an option.
    fast = True


class DescriptorTests(SynchronousTestCase):
    """Options as class attributes that read the instance's config."""

    def test_class_access(self):
        """On the class the attribute is the Option itself, named after the attribute."""
        self.assertIsInstance(Declared.size, IntOption)
        self.assertEqual(Declared.size.name, "size")

    def test_explicit_name(self):
        """name= sets the INI key independently of the attribute."""
        self.assertEqual(Declared.colour.name, "color")

    def test_default_without_config(self):
        """An instance without config reads every option's default."""
        declared = Declared()
        self.assertEqual((declared.size, declared.colour), (3, "red"))

    def test_reads_instance_config(self):
        """An instance reads the values of its own config mapping, by INI key."""
        declared, other = Declared(), Declared()
        declared.config = {"size": 9, "color": "blue"}
        self.assertEqual((declared.size, declared.colour), (9, "blue"))
        self.assertEqual(other.size, 3)

    def test_config_changes_are_seen(self):
        """A new config (as after a reload) is seen at once."""
        declared = Declared()
        declared.config = {"size": 1}
        declared.config = {"size": 2}
        self.assertEqual(declared.size, 2)


class OptionsOfTests(SynchronousTestCase):
    """options_of and defaults_of."""

    def test_inheritance(self):
        """Options are collected through the class hierarchy; a subclass's version wins."""
        found = options_of(Derived)
        self.assertEqual(sorted(found), ["color", "fast", "size", "tags"])
        self.assertIs(found["size"], Derived.__dict__["size"])

    def test_instances(self):
        """An instance can be given instead of its class."""
        self.assertEqual(options_of(Derived()), options_of(Derived))

    def test_several(self):
        """Several declarers' options are merged."""

        class Other:
            extra = Option("More.")

        self.assertEqual(sorted(options_of(Declared, Other)), ["color", "extra", "size", "tags"])

    def test_replaced_by_value(self):
        """An option a subclass replaces with a plain value is not collected."""
        self.assertNotIn("fast", options_of(Fixed))
        self.assertIs(Fixed().fast, True)

    def test_defaults(self):
        """defaults_of maps INI keys to defaults."""
        self.assertEqual(
            defaults_of(options_of(Derived).values()),
            {"size": 5, "color": "red", "tags": [], "fast": False},
        )
