"""The checkout as the collection damon_fleet.fleet: the link ``.damon-fleet/collections/
ansible_collections/damon_fleet/fleet`` -> the checkout, which ``ansible.cfg``'s
``collections_path`` names and through which Ansible resolves the modules' imports of
``ansible_collections.damon_fleet.fleet.plugins.module_utils``. Made by ``.ci/bootstrap``
and by every ``damon-fleet`` command (:func:`damon_fleet._paths.ensure_collection_link`);
these tests make it in tmp_path, never in the checkout."""

from __future__ import annotations

import configparser
import os
from pathlib import Path

import pytest

from damon_fleet import _paths

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def checkout(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "checkout"
    (root / "plugins" / "module_utils" / "damon").mkdir(parents=True)
    (root / "plugins" / "module_utils" / "damon" / "__init__.py").write_text("")
    collections = root / ".damon-fleet" / "collections"
    monkeypatch.setattr(_paths, "CONTENT_ROOT", root)
    monkeypatch.setattr(_paths, "IS_CHECKOUT", True)
    monkeypatch.setattr(_paths, "COLLECTIONS_ROOT", collections)
    monkeypatch.setattr(
        _paths, "COLLECTION_LINK", collections / "ansible_collections" / "damon_fleet" / "fleet"
    )
    return root


def test_the_link_is_a_relative_symlink_to_the_checkout(checkout):
    _paths.ensure_collection_link()
    link = _paths.COLLECTION_LINK
    assert os.readlink(link) == "../../../.."
    assert link.resolve() == checkout.resolve()
    assert (link / "plugins" / "module_utils" / "damon" / "__init__.py").is_file()


def test_an_existing_link_is_kept_and_a_wrong_one_repaired(checkout):
    _paths.ensure_collection_link()
    link = _paths.COLLECTION_LINK
    before = link.lstat().st_ino
    _paths.ensure_collection_link()
    assert link.lstat().st_ino == before
    link.unlink()
    link.symlink_to("/nonexistent")
    _paths.ensure_collection_link()
    assert os.readlink(link) == "../../../.."
    assert [p.name for p in link.parent.iterdir()] == ["fleet"]


def test_a_folder_in_the_links_place_is_an_error_naming_it(checkout):
    _paths.COLLECTION_LINK.mkdir(parents=True)
    with pytest.raises(RuntimeError) as err:
        _paths.ensure_collection_link()
    assert str(err.value) == (
        f"{_paths.COLLECTION_LINK} is not a symlink: remove it, damon-fleet links it to "
        "the checkout (../../../..)"
    )


def test_an_installed_collection_needs_no_link(checkout, monkeypatch):
    monkeypatch.setattr(_paths, "IS_CHECKOUT", False)
    _paths.ensure_collection_link()
    assert not (checkout / ".damon-fleet").exists()


def test_ansible_cfg_and_bootstrap_name_the_same_link():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "ansible.cfg")
    paths = cfg["defaults"]["collections_path"].split(":")
    assert (ROOT / paths[0]).absolute() == _paths.COLLECTIONS_ROOT
    assert "~/.ansible/collections" in paths and "/usr/share/ansible/collections" in paths
    assert "module_utils" not in cfg["defaults"]
    bootstrap = (ROOT / ".ci" / "bootstrap").read_text()
    rel_link = _paths.COLLECTION_LINK.relative_to(ROOT)
    assert f"ln -sfn ../../../.. {rel_link}\n" in bootstrap
