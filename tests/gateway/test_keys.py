"""The key store (keys, grants, owners; file mode; root credentials) and the access
policy (properties over every key, access need and rights)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from s3lite.errors import InvalidArgument
from s3lite.gateway.auth.keystore import FILE_NAME, KeyStore, root_from_env
from s3lite.gateway.auth.policy import NOBODY, Identity, Rights, allowed, visible
from s3lite.gateway.router import Access


def test_a_generated_root_key_is_stored_privately_and_kept(tmp_path: Path) -> None:
    store = KeyStore.open(tmp_path)
    assert store.generated_root
    root = store.root
    assert root.root
    assert len(root.access_key) == 20
    assert len(root.secret) >= 40
    assert root.secret not in repr(root)
    assert stat.S_IMODE((tmp_path / FILE_NAME).stat().st_mode) == 0o600
    store.close()
    again = KeyStore.open(tmp_path)
    assert (again.root, again.generated_root) == (root, False)
    again.close()


def test_root_from_the_environment_replaces_the_stored_one(tmp_path: Path) -> None:
    KeyStore.open(tmp_path).close()
    store = KeyStore.open(tmp_path, root=("ADMINKEY", "a-long-secret"))
    assert (store.root.access_key, store.root.secret, store.generated_root) == (
        "ADMINKEY", "a-long-secret", False,
    )  # fmt: skip
    assert [key.access_key for key in store.list_keys() if key.root] == ["ADMINKEY"]
    assert store.identity("ADMINKEY") == Identity("ADMINKEY", root=True)


@pytest.mark.parametrize(
    "env",
    [
        {"S3LITE_ROOT_USER": "ADMINKEY"},
        {"S3LITE_ROOT_PASSWORD": "a-long-secret"},
        {"S3LITE_ROOT_USER": "a b", "S3LITE_ROOT_PASSWORD": "a-long-secret"},
        {"S3LITE_ROOT_USER": "ADMINKEY", "S3LITE_ROOT_PASSWORD": "short"},
    ],
)
def test_bad_root_settings_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=r"S3LITE_ROOT|access key|secret"):
        root_from_env(env)


def test_keys_grants_and_owners_survive_a_restart(tmp_path: Path) -> None:
    store = KeyStore.open(tmp_path)
    alice, bob = store.create_key("alice"), store.create_key("bob")
    assert store.claim("photos", alice.access_key) == alice.access_key
    assert store.claim("photos", bob.access_key) == alice.access_key  # taken
    assert store.grant(bob.access_key, "photos", read=True, write=None) == (True, False)
    store.adopt(["legacy", "photos"])
    store.close()
    store = KeyStore.open(tmp_path)
    assert store.secret(alice.access_key) == alice.secret
    assert store.rights(alice.access_key, "photos") == Rights(owner=True)
    assert store.rights(bob.access_key, "photos") == Rights(read=True)
    assert store.owner("legacy") == store.root.access_key
    assert store.grants_of(bob.access_key) == {"photos": {"read": True, "write": False}}
    assert store.grant(bob.access_key, "photos", read=False, write=None) == (False, False)
    assert store.grants_of(bob.access_key) == {}

    store.grant(bob.access_key, "photos", read=True, write=True)
    store.forget("photos")
    assert store.rights(alice.access_key, "photos") == NOBODY
    assert store.grants_of(bob.access_key) == {}

    store.claim("mine", bob.access_key)
    store.delete_key(bob.access_key)
    assert store.secret(bob.access_key) is None
    assert store.owner("mine") == store.root.access_key
    with pytest.raises(InvalidArgument):
        store.delete_key(store.root.access_key)
    with pytest.raises(InvalidArgument):
        store.grant("nobody", "b", read=True, write=None)


identities = st.builds(Identity, st.sampled_from(["k1", "k2"]), st.booleans())
rights = st.builds(Rights, st.booleans(), st.booleans(), st.booleans(), st.booleans())


@given(identity=identities, access=st.sampled_from(list(Access)), held=rights)
def test_policy_properties(identity: Identity, access: Access, held: Rights) -> None:
    verdict = allowed(identity, access, held)
    if identity.root:
        assert verdict
    elif access is Access.ADMIN:
        assert not verdict
    elif access in (Access.LIST_BUCKETS, Access.CREATE_BUCKET) or not held.owned:
        assert verdict
    elif held.owner:
        assert verdict  # an owner may do everything to its bucket
    elif access is Access.OWNER:
        assert not verdict
    else:
        assert verdict == (held.read if access is Access.READ else held.write)
    # more rights never take a permission away
    more = Rights(held.owned, held.owner, True, True)
    assert allowed(identity, access, more) or not verdict
    assert visible(identity, held) == (identity.root or (held.owned and held.any))
