import io
import subprocess
import sys

import pytest

from skprune.cli import demo, demo_search, main


def test_demo_prints_lambda_accuracy_density(capsys):
    buffer = io.StringIO()
    rows = demo(lambdas=(0.0, 3e-3), max_epochs=3, file=buffer)
    text = buffer.getvalue()
    assert "lambda" in text and "accuracy" in text and "density" in text
    assert len(rows) == 2 and rows[1]["density"] < rows[0]["density"]


def test_main_requires_a_command(capsys):
    with pytest.raises(SystemExit):
        main([])
    assert "demo" in capsys.readouterr().err


@pytest.mark.slow  # a fresh interpreter importing torch: 6 s of CPU here
def test_python_dash_m_entry_point():
    out = subprocess.run(
        [sys.executable, "-m", "skprune", "--help"], capture_output=True, text=True, check=True
    )
    assert "demo" in out.stdout


def test_demo_search_prints_the_table_and_the_knee():
    buffer = io.StringIO()
    search = demo_search(budget=3, max_epochs=1, cv=2, file=buffer)
    text = buffer.getvalue()
    assert "3 lambdas x 2 folds, 1 epochs each" in text
    assert f"knee: lambda={search.knee_['lam']:.3g}, refit for 1 epochs" in text
    assert text.count("knee\n") == 1  # one row of the table is marked


@pytest.mark.slow
def test_main_demo_runs_the_knee_search_and_saves_the_plot(tmp_path, capsys):
    png = tmp_path / "front.png"
    assert main(["demo", "--epochs", "2", "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "knee: lambda=" in out and "accuracy" in out
    assert png.stat().st_size > 10_000
