from helpers.environment import check_environment, pins, problems


def test_pins_reads_exact_pins_and_ignores_comments(tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("# comment\npytest==9.2.0  # tests\n\nnot-pinned>=1\nruff==0.17.5\n")
    assert pins(req) == {"pytest": "9.2.0", "ruff": "0.17.5"}


def test_reports_a_wrong_version_a_missing_package_and_an_old_python(tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("pytest==0.0.1\nno-such-package-here==1.0\n")
    found = problems(req, python=(3, 10, 0))
    assert found[0] == "Python 3.10 is too old: the series needs 3.11+"
    assert found[1].startswith("pytest ") and found[1].endswith("requirements.txt pins 0.0.1")
    assert found[2] == "no-such-package-here is not installed (requirements.txt pins 1.0)"


def test_this_environment_matches_requirements(capsys):
    assert problems() == []
    check_environment()
    assert "matches its pin in requirements.txt" in capsys.readouterr().out
