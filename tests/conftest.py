"""Shared fixtures. Tests run on CPU, seeded, with the smoke preset and no progress bars."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if (ROOT.parent / "shared" / "data").is_dir():          # the project's build machines keep a mirror there
    os.environ.setdefault("GIFD_DATA", str((ROOT.parent / "shared" / "data").resolve()))
CIFAR_MISSING = None                                    # why CIFAR-10 cannot be had, when it cannot


def pytest_sessionstart(session):
    """Find CIFAR-10 once (downloading it where there is internet and no copy); if it cannot be had, the
    tests that need it are skipped with the reason instead of failing (pytest_runtest_makereport)."""
    global CIFAR_MISSING
    from gifd_lite.data import load_cifar10
    from gifd_lite.errors import GifdError

    try:
        load_cifar10("test", download=True)
    except GifdError as exc:
        CIFAR_MISSING = str(exc)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if CIFAR_MISSING and report.failed and call.excinfo is not None and "CIFAR-10 not found" in str(call.excinfo.value):
        report.outcome, report.longrepr = "skipped", (str(item.path), item.location[1] or 0,
                                                      f"Skipped: needs CIFAR-10 ({CIFAR_MISSING})")
os.environ["GIFD_PRESET"] = "smoke"       # read by the notebooks' parameters cell (nbval runs them as-is)
if os.environ.get("PYTEST_XDIST_WORKER"):   # `make test` runs two workers on two cores: one thread each, kernels too
    os.environ["OMP_NUM_THREADS"] = os.environ["GIFD_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)
os.environ["GIFD_NO_PROGRESS"] = "1"
os.environ["MPLBACKEND"] = "Agg"


@pytest.fixture(scope="session")
def cifar_test():
    from gifd_lite.data import load_cifar10

    return load_cifar10("test", download=False)


@pytest.fixture(scope="session")
def smoke():
    from gifd_lite.config import get_preset

    return get_preset("smoke")


@pytest.fixture(scope="module")
def tiny_prior():
    """An untrained, frozen width-8 generator: the stage API at a size a unit test can afford."""
    import torch

    from gifd_lite.gan import Generator, GeneratorConfig

    torch.manual_seed(0)
    G = Generator(GeneratorConfig(width=8, z_dim=32)).eval()
    for p in G.parameters():
        p.requires_grad_(False)
    return G


@pytest.hookimpl(tryfirst=True)      # before pytest-xdist's own hook, which reads the marks to group the tests
def pytest_collection_modifyitems(items):
    """Under pytest-xdist (``--dist loadgroup``): the cells of one notebook run by nbval share a kernel, so they stay
    on one worker; and the tests that start Flower's simulation engine (Ray) run one after another on one worker,
    since two Ray clusters starting at once on two busy cores can miss Ray's 30-second startup deadline; and the
    website tests share one build of the site."""
    for item in items:
        if type(item).__name__ == "IPyNbCell":
            item.add_marker(pytest.mark.xdist_group(item.path.stem))
        elif item.path.name == "test_federation.py" or "10_attacking_a_flower_federation" in item.name:
            item.add_marker(pytest.mark.xdist_group("flower"))
        elif item.path.name == "test_book.py":          # its module fixture builds the whole site: once
            item.add_marker(pytest.mark.xdist_group("book"))


def pytest_xdist_node_collection_finished(node, ids):
    """The grouping above is what keeps two Ray clusters from starting at once: stop at once if pytest-xdist did not
    apply it (pytest 9.2 broke it silently; pyproject.toml pins pytest below it)."""
    if node.config.getoption("dist") == "loadgroup" and any("test_federation.py" in i and "@" not in i for i in ids):
        pytest.exit(f"pytest-xdist's --dist loadgroup did not group the tests (pytest {pytest.__version__}): "
                    f"install pytest<9.2", returncode=pytest.ExitCode.USAGE_ERROR)
