"""API keys: stored as hashes, read from a file or the environment, refused with clear reasons."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from service.security.keys import KeyConfigError, KeyRing, hash_key, load_file, new_key, parse_env
from service.security.scopes import Scope


def test_a_new_key_is_long_random_and_recognisable() -> None:
    a, b = new_key(), new_key()
    assert a != b
    assert a.startswith("usm_")
    assert len(a) == 4 + 43  # 32 random bytes, URL-safe base64 without padding


def test_the_stored_form_is_the_sha256_of_the_key() -> None:
    key = new_key()
    assert hash_key(key) == "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    assert key not in hash_key(key)


def test_a_ring_names_the_holder_of_a_configured_key_and_nobody_else() -> None:
    key, other = new_key(), new_key()
    ring = KeyRing(parse_env(f"ci:score,dispatch:{hash_key(key)}"))
    holder = ring.verify(key)
    assert holder is not None
    assert holder.name == "ci"
    assert holder.scopes == {Scope.SCORE, Scope.DISPATCH}
    assert ring.verify(other) is None
    assert ring.verify("") is None
    assert ring.verify(key + " ") is None


def test_environment_entries_are_separated_by_semicolons_or_newlines() -> None:
    a, b = new_key(), new_key()
    keys = parse_env(f" a:score:{hash_key(a)} ;\n b:admin:{hash_key(b)}\n;")
    assert [(k.name, k.scopes) for k in keys] == [("a", [Scope.SCORE]), ("b", [Scope.ADMIN])]


def test_an_environment_entry_without_three_parts_is_refused_by_position() -> None:
    with pytest.raises(KeyConfigError) as err:
        parse_env(f"a:score:{hash_key(new_key())};justakey")
    assert str(err.value) == (
        "USM_API_KEYS entry 2: expected NAME:SCOPES:sha256:HEX (run `usm keys new` to get one)"
    )


def test_an_unknown_scope_is_refused_naming_the_allowed_ones() -> None:
    with pytest.raises(KeyConfigError) as err:
        parse_env(f"a:score,sudo:{hash_key(new_key())}")
    assert str(err.value) == (
        "USM_API_KEYS entry 1: Invalid enum value 'sudo' - at `$.scopes[1]`; "
        "allowed scopes: score, dispatch, admin"
    )


def test_a_raw_key_pasted_where_the_hash_belongs_is_refused_without_echoing_it() -> None:
    key = new_key()
    with pytest.raises(KeyConfigError) as err:
        parse_env(f"a:score:{key}")
    assert key not in str(err.value)


def test_a_key_file_is_toml_with_name_hash_and_scopes(tmp_path: Path) -> None:
    key = new_key()
    path = tmp_path / "keys.toml"
    path.write_text(f'[[keys]]\nname = "jira"\nhash = "{hash_key(key)}"\nscopes = ["dispatch"]\n')
    holder = KeyRing.configured(str(path), None).verify(key)
    assert holder is not None
    assert (holder.name, holder.scopes) == ("jira", {Scope.DISPATCH})


def test_a_key_file_with_an_unknown_field_is_refused_naming_the_file_and_field(
    tmp_path: Path,
) -> None:
    path = tmp_path / "keys.toml"
    path.write_text(
        f'[[keys]]\nname = "jira"\nhash = "{hash_key(new_key())}"\nscopes = ["score"]\nkey = "x"\n'
    )
    with pytest.raises(KeyConfigError) as err:
        load_file(path)
    assert str(err.value) == f"{path}: Object contains unknown field `key` - at `$.keys[0]`"


def test_a_missing_key_file_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(KeyConfigError) as err:
        load_file(path)
    assert str(err.value) == f"{path}: cannot read API key file: No such file or directory"


def test_two_keys_with_one_name_are_refused() -> None:
    entries = f"a:score:{hash_key(new_key())};a:admin:{hash_key(new_key())}"
    with pytest.raises(KeyConfigError, match="API key name 'a' appears twice"):
        KeyRing(parse_env(entries))


def test_keys_from_file_and_environment_are_both_used(tmp_path: Path) -> None:
    a, b = new_key(), new_key()
    path = tmp_path / "keys.toml"
    path.write_text(f'[[keys]]\nname = "a"\nhash = "{hash_key(a)}"\nscopes = ["score"]\n')
    ring = KeyRing.configured(str(path), f"b:admin:{hash_key(b)}")
    assert ring.names == ["a", "b"]
    assert ring.verify(a) is not None
    assert ring.verify(b) is not None
