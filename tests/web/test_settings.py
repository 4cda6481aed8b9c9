from __future__ import annotations

from pathlib import Path

import pytest

from web.settings import Settings, SettingsError, load_settings, setting_fields


def test_defaults_match_the_documented_embedded_setup(tmp_path: Path) -> None:
    s = load_settings({}, data_dir=str(tmp_path)).resolved()
    assert (s.host, s.port, s.public_url) == ("127.0.0.1", 8080, "http://127.0.0.1:8080")
    assert s.database_url == f"sqlite+aiosqlite:///{tmp_path / 'claimcam.db'}"
    assert (s.email_delivery, s.sms_delivery, s.redis_url) == ("outbox", "outbox", "")


def test_environment_overrides_toml(tmp_path: Path) -> None:
    conf = tmp_path / "claimcam.toml"
    conf.write_text('port = 9001\nhost = "0.0.0.0"\ndemo = true\n')
    s = load_settings({"CLAIMCAM_PORT": "9002"}, config_file=str(conf))
    assert (s.port, s.host, s.demo) == (9002, "0.0.0.0", True)


def test_config_file_can_come_from_the_environment(tmp_path: Path) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text('[claimcam]\nsms_sender = "Aurora"\n')
    assert load_settings({"CLAIMCAM_CONFIG": str(conf)}).sms_sender == "Aurora"


@pytest.mark.parametrize(
    "env",
    [{"CLAIMCAM_PORT": "eighty"}, {"CLAIMCAM_DEMO": "maybe"}, {"CLAIMCAM_EMAIL_DELIVERY": "pigeon"},
     {"CLAIMCAM_SMS_DELIVERY": "gateway"}, {"CLAIMCAM_PORT": "70000"}],
)
def test_bad_values_are_refused_with_a_clear_error(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        load_settings(env)


def test_unknown_toml_key_is_refused(tmp_path: Path) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text("prot = 1\n")
    with pytest.raises(SettingsError, match="prot"):
        load_settings({}, config_file=str(conf))


def test_instance_secret_is_created_once_and_kept(tmp_path: Path) -> None:
    first = Settings(data_dir=str(tmp_path)).resolved()
    second = Settings(data_dir=str(tmp_path)).resolved()
    assert first.secret == second.secret and len(first.secret) >= 40
    assert (tmp_path / "secret.key").stat().st_mode & 0o077 == 0
    assert first.jwt_secret != first.secret and first.link_secret != first.secret.encode()


def test_readme_documents_every_setting() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    missing = [f.name for f in setting_fields() if f"CLAIMCAM_{f.name.upper()}" not in readme]
    assert missing == []
