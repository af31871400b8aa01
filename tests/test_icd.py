"""ICD-10-CM helpers: normalisation, descriptions, the chronic list, related codes (notebooks 01, 06)."""
import subprocess
import sys

import pytest

from bertxml_lib.data import icd


@pytest.mark.parametrize("raw, expected", [
    ("i2510", "I25.10"), ("i25.10", "I25.10"), (" I10 ", "I10"), ("I10.", "I10"),
    ("e1165", "E11.65"), ("m1a9xx0", "M1A.9XX0"), ("Q00123", "Q00.123"),  # the last is not a real code
])
def test_normalize_code(raw, expected):
    assert icd.normalize_code(raw) == expected


@pytest.mark.parametrize("bad", ["", "12345", "I2", "I25.1234567", "I2-5", None])
def test_normalize_code_rejects_non_codes(bad):
    with pytest.raises(ValueError, match="ICD"):
        icd.normalize_code(bad)


def test_describe_known_and_unknown_codes():
    assert "cluster headache" in icd.describe("G44.029").lower()
    assert "post-traumatic headache" in icd.describe("G44.329").lower()
    assert icd.describe("i10") == "Essential (primary) hypertension"
    assert icd.describe("C50.912") == "Malignant neoplasm of unspecified site of left female breast"
    assert icd.describe("q00123") == "Q00.123"          # unknown: falls back to the dotted code


@pytest.mark.parametrize("code, chronic", [
    ("I10", True), ("I25.10", True), ("E11.65", True), ("E78.5", True), ("K21.9", True), ("E03.9", True),
    ("F32.9", True), ("F41.1", True), ("N18.30", True), ("J44.9", True), ("J45.909", True), ("I48.91", True),
    ("I50.9", True), ("G47.33", True), ("M81.0", True), ("N40.0", True), ("M17.0", True), ("M06.9", True),
    ("E55.9", True), ("G89.29", True), ("G62.9", True), ("C50.911", True), ("G44.029", True),
    ("G47.00", False), ("G89.18", False), ("J06.9", False), ("Z00.00", False), ("I21.4", False),
    ("M54.50", False), ("R53.83", False), ("Z51.11", False), ("G44.209", False), ("N39.0", False),
])
def test_is_chronic(code, chronic):
    assert icd.is_chronic(code) is chronic


def test_chronic_prefixes_are_undotted_and_expand_ranges():
    assert {"I10", "I11", "I12", "I13", "I14", "I15", "E08", "E13", "M15", "M19", "G4733", "G892"} <= set(icd.CHRONIC_PREFIXES)
    assert "I16" not in icd.CHRONIC_PREFIXES and all("." not in p and "-" not in p for p in icd.CHRONIC_PREFIXES)


def test_related_codes_same_category_closest_first():
    assert icd.related_codes("G44.029", ["G44.329", "G44.209", "G44.021", "I10", "G44.029"]) == ["G44.021", "G44.209", "G44.329"]
    assert icd.related_codes("C50.911", ["C50.912", "C50.919", "C50.011", "D05.10", "c50912"]) == ["C50.912", "C50.919", "C50.011"]
    assert icd.related_codes("I10", ["E78.5"]) == []


def test_code_parent():
    assert icd.code_parent("I25.10") == "I25.1"
    assert icd.code_parent("I25") == "I20-I25"            # a category's parent is its block
    assert icd.code_parent("Q00.123") == "Q00.12"         # unknown: drop the last character


def test_leaf_codes():
    leaves = set(icd.leaf_codes())
    assert {"I10", "I25.10", "N18.30", "M54.50", "G44.029", "S72.001A"} <= leaves
    assert not {"I25.1", "N18.3", "M54.5", "I48.2"} & leaves     # parents are not billable
    assert len(leaves) > 70_000


def test_string_helpers_do_not_load_the_package():
    code = ("import sys; from bertxml_lib.data import icd; icd.normalize_code('i2510'); icd.is_chronic('I10'); "
            "icd.related_codes('I10', ['I11.9']); assert 'simple_icd_10_cm' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_related_codes_of_icd9_group_by_category_e_codes_by_four_characters():
    assert icd.related_codes("4019", ["401.1", "4010", "402.0", "V58.61", "401.9"], icd_version=9) == ["401.0", "401.1"]
    assert icd.related_codes("E849.0", ["E8491", "E850.0", "E849"], icd_version=9) == ["E849", "E849.1"]
    assert icd.related_codes("V58.61", ["V58.69", "V57.1"], icd_version=9) == ["V58.69"]
    assert [icd.category(c, 9) for c in ("401.9", "V58.61", "E849.0", "038")] == ["401", "V58", "E849", "038"]
    assert icd.category("I25.10") == "I25"
    with pytest.raises(ValueError, match="ICD-9"):
        icd.related_codes("I10", ["I11"], icd_version=9)
