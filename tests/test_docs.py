"""The Python code blocks of the README and the Sphinx pages run, page by page.

A page's blocks are its ``.. code-block:: python`` blocks, its ``::`` literal
blocks that parse as Python (shell lines such as ``make test`` do not), and the
README's ```` ```python ```` fences. They run in order in one namespace per
page, started with small data under the names the pages use for "your data"
(:func:`_your_data`), in a fresh working folder, so that files a block writes
(``memory="fits/"``, ``"model.skp"``) do not stay behind.

Three rules, visible to readers too:

* A block whose caption (``:caption:``) or first line starts with
  "Illustration only" is not run.
* A block that shows an error as a comment, ``# FloatingPointError: ...``, must
  raise that error.
* Doctest blocks (``>>>``) run as doctests of their page: ``make docs-check``
  doctests every page (``--doctest-glob='*.rst'``), ``make test`` extending.rst.

A page that loads MNIST-10k (``mnist_10k_split()``) skips without its files.

Pages whose blocks take more than a few seconds are marked slow (``SLOW``);
``make docs-check`` runs every page, ``make test`` the others.
"""

import ast
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest

from skprune.datasets import find_mnist_10k

ROOT = Path(__file__).resolve().parents[1]
PAGES = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.rst")),
    *sorted((ROOT / "docs" / "user_guide").glob("*.rst")),
]
# Pages over a few seconds, with the time measured on the shared 2-core machine.
SLOW = {
    "README.md": "9-12 s: a LeNet-5 bisection search and refit",
    "docs/user_guide/knee_search.rst": "14-21 s: a LeNet-5 bisection search with n_jobs=-1",
    "docs/user_guide/regularizers_and_pruning.rst": "8-19 s: GridSearchCV, 8 settings x 3 folds",
}
ILLUSTRATION = "illustration only"
_DIRECTIVE = re.compile(r"^(\s*)\.\. code-block::\s*(\S*)\s*$")
_OPTION = re.compile(r"^\s+:([\w-]+):\s*(.*)$")
_SHOWN_ERROR = re.compile(r"^\s*# (\w+(?:Error|Exception|Interrupt)):", re.MULTILINE)


def _indented_block(lines, start, indent):
    """The dedented lines from ``start`` on that are indented deeper than ``indent``."""
    end = start
    while end < len(lines) and (
        not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > indent
    ):
        end += 1
    return textwrap.dedent("\n".join(lines[start:end])).strip("\n"), end


def _is_python(code):
    """Whether a literal block is Python: it parses and is more than one bare name."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return False
    return not (len(tree.body) == 1 and isinstance(tree.body[0], ast.Expr)
                and isinstance(tree.body[0].value, ast.Name))  # fmt: skip


def rst_blocks(text):
    """``(line, caption, code)`` of the Python blocks of an RST page, in order."""
    lines, blocks, i = text.splitlines(), [], 0
    while i < len(lines):
        line, directive = lines[i], _DIRECTIVE.match(lines[i])
        literal = line.rstrip().endswith("::") and not line.lstrip().startswith("..")
        if not (directive or literal):
            i += 1
            continue
        indent, options, j = len(line) - len(line.lstrip()), {}, i + 1
        while directive and j < len(lines) and _OPTION.match(lines[j]):
            key, value = _OPTION.match(lines[j]).groups()
            options[key], j = value, j + 1
        code, end = _indented_block(lines, j, indent)
        python = directive.group(2) == "python" if directive else _is_python(code)
        if code and python:
            blocks.append((i + 1, options.get("caption", ""), code))
        i = max(end, i + 1)
    return blocks


def markdown_blocks(text):
    """``(line, caption, code)`` of the ```` ```python ```` fences of a Markdown page."""
    fences = re.finditer(r"^```python\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    return [(text[: m.start()].count("\n") + 1, "", m.group(1)) for m in fences]


def page_blocks(path):
    text = path.read_text(encoding="utf-8")
    return markdown_blocks(text) if path.suffix == ".md" else rst_blocks(text)


def is_illustration(caption, code):
    first = code.lstrip().splitlines()[0].lstrip("# ").lower() if code.strip() else ""
    return caption.lower().startswith(ILLUSTRATION) or first.startswith(ILLUSTRATION)


def _your_data(page):
    """Small stand-ins for the data a page calls ``X``, ``y``, ``X_test``, ...

    Classification pages get 160 of scikit-learn's digits (120 to fit, 40 to test) upscaled to 28x28
    images (``(n, 1, 28, 28)``, as MNIST), so that ``"lenet5"`` and the MLPs
    both take them; the regression page gets the diabetes split it describes.
    """
    from sklearn.datasets import load_diabetes, load_digits
    from sklearn.model_selection import train_test_split

    if page.name == "regression.rst":
        X, y = load_diabetes(return_X_y=True)
        X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    else:
        X, y = load_digits(return_X_y=True)
        images = np.kron(X.reshape(-1, 8, 8) / 16.0, np.ones((3, 3)))  # 24x24
        X = np.pad(images, ((0, 0), (2, 2), (2, 2)))[:, None].astype(np.float32)
        X_train, X_test, y_train, y_test = train_test_split(
            X[:160], y[:160], test_size=40, stratify=y[:160], random_state=0
        )
    return {"X": X_train, "y": y_train, "X_train": X_train, "y_train": y_train,
            "X_test": X_test, "y_test": y_test, "X_new": X_test[:5]}  # fmt: skip


def run_block(code, namespace, where):
    shown = _SHOWN_ERROR.search(code)
    compiled = compile(code, where, "exec")
    if shown is None:
        exec(compiled, namespace)
        return
    with pytest.raises(BaseException) as info:
        exec(compiled, namespace)
    assert type(info.value).__name__ == shown.group(1), f"{where} raised {info.value!r}"


def _page_params():
    for path in PAGES:
        name = path.relative_to(ROOT).as_posix()
        if not any(not code.lstrip().startswith(">>>") for _, _, code in page_blocks(path)):
            continue
        marks = [pytest.mark.slow] if name in SLOW else []
        yield pytest.param(path, id=name, marks=marks)


@pytest.mark.parametrize("path", _page_params())
def test_docs_page_blocks_run(path, tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__docs__", **_your_data(path)}
    ran = 0
    for line, caption, code in page_blocks(path):
        if code.lstrip().startswith(">>>") or is_illustration(caption, code):
            continue
        if "mnist_10k_split(" in code and find_mnist_10k() is None:
            pytest.skip("needs the MNIST-10k files (shared/data or $SKPRUNE_MNIST)")
        run_block(code, namespace, f"{path.relative_to(ROOT)}:{line}")
        ran += 1
    if ran == 0:
        pytest.skip("every block of this page is an illustration")


def test_rst_blocks_finds_code_blocks_and_python_literals():
    page = textwrap.dedent(
        """
        Run it::

            make test

        In Python::

            clf = make()

        .. code-block:: python
           :caption: Illustration only: needs a GPU

           clf.fit(X, y)

        .. math::

           x = 1
        """
    )
    blocks = rst_blocks(page)
    assert [(caption, code) for _, caption, code in blocks] == [
        ("", "clf = make()"),
        ("Illustration only: needs a GPU", "clf.fit(X, y)"),
    ]
    assert is_illustration(*blocks[1][1:]) and not is_illustration(*blocks[0][1:])


def test_markdown_blocks_reads_python_fences_only():
    page = "```\nmake demo\n```\n\n```python\nx = 1\n```\n"
    assert markdown_blocks(page) == [(5, "", "x = 1\n")]


def test_run_block_requires_the_error_a_block_shows():
    run_block("raise ValueError('no')\n# ValueError: no", {}, "page:1")
    with pytest.raises(AssertionError, match="raised"):
        run_block("raise KeyError('k')\n# ValueError: no", {}, "page:1")
    with pytest.raises(pytest.fail.Exception):
        run_block("x = 1\n# ValueError: no", {}, "page:1")


def _check_pages():
    import importlib.util

    spec = importlib.util.spec_from_file_location("check_pages", ROOT / "docs" / "check_pages.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_check_pages_finds_raw_tex_outside_code_only():
    check = _check_pages()
    page = check.parse(
        '<p>loss <span class="math">\\(E(w)\\)</span></p><pre>re.escape("\\(")</pre>'
        '<div class="math"><mjx-container>J</mjx-container></div><script>"$$"</script>'
    )
    assert len(check.raw_tex(page)) == 1 and "E(w)" in check.raw_tex(page)[0]
    assert (page.math, page.math_typeset) == (2, 1)


def test_check_pages_flags_network_resources_and_bad_images(tmp_path):
    check = _check_pages()
    (tmp_path / "good.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(8))
    (tmp_path / "bad.png").write_bytes(b"<html>")
    (tmp_path / "page.html").write_text(
        '<script src="https://cdn.example/mathjax.js"></script><a href="https://x.org">x</a>'
        '<img src="good.png"><img src="bad.png"><img src="gone.png">'
    )
    failures = check.check_files(tmp_path)
    assert failures == [
        "page.html: loads https://cdn.example/mathjax.js from the network",
        "page.html: image bad.png is not a png file",
        "page.html: image gone.png is missing",
    ]
