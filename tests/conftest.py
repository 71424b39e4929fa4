"""Shared fixtures: the golden vectors of the tiny official model, environment for offline runs."""
import json
import os
import time
from pathlib import Path

import pytest
import torch

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
torch.set_num_threads(2)

FIXTURES = Path(__file__).parent / "fixtures"


def pytest_collection_modifyitems(config, items):
    """`gpu` tests run only where CUDA is present (the marker's promise in pyproject and README); `browser` tests
    only where Debian's chromium is (before their page is even launched)."""
    missing = {"gpu": None if torch.cuda.is_available() else "needs a CUDA device",
               "browser": None if Path(CHROMIUM).exists() else f"{CHROMIUM} is not installed (apt-get install chromium)"}
    for item in items:
        for marker, reason in missing.items():
            if reason and marker in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))


class Golden:
    """Lazy access to golden_tiny.safetensors: `g['sq.vae.z']`, weights with a prefix upcast to float32."""

    def __init__(self):
        from safetensors import safe_open

        self._f = safe_open(str(FIXTURES / "golden_tiny.safetensors"), "pt")
        self.meta = json.loads((FIXTURES / "golden_tiny.json").read_text())

    def __getitem__(self, key):
        t = self._f.get_tensor(key)
        return t.float() if t.dtype == torch.bfloat16 else t

    def keys(self):
        return self._f.keys()

    def weights(self, prefix):
        n = len(prefix) + 1
        return {k[n:]: self[k] for k in self.keys() if k.startswith(prefix + ".")}

    def image(self, case):
        u8 = self[f"in.{case}.image_u8"]
        t = u8.float() / 255
        return t + t - 1  # the official transform's arithmetic, bit for bit


@pytest.fixture(scope="session")
def golden():
    return Golden()


def _png_header(path, width: int, height: int) -> str:
    """A tiny PNG file that claims width×height pixels (no image data): what a decompression bomb looks like to a
    reader that trusts the header."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return str(path)


@pytest.fixture
def png_header():
    """`png_header(path, width, height)` writes a header-only PNG (test_validation, test_app)."""
    return _png_header


@pytest.fixture(scope="session")
def bundled_pipe():
    """The bundled model on CPU, loaded once for the whole run (app, browser, CLI and int8 tests share it)."""
    from infinity.pipeline import ASSETS, InfinityPipeline

    if not (ASSETS / "config.json").is_file():
        pytest.skip("bundled model not in assets/")
    return InfinityPipeline.from_pretrained(device="cpu")


def read_tsv(name):
    rows = (FIXTURES / "state_dicts" / name).read_text().splitlines()[1:]
    return {k: tuple(int(x) for x in s.split(",")) for k, s in (r.split("\t") for r in rows)}


def tiny_t5_encoder(golden):
    """The golden tiny T5 (d_model 256) with its offline tokenizer, as a TextEncoder."""
    import transformers
    import tokenizers

    from infinity.text import TextEncoder

    meta = golden.meta["meta"]["t5"]
    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizers.Tokenizer.from_str(json.dumps(meta["tokenizer_json"])),
        eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
    )
    model = transformers.T5EncoderModel(transformers.T5Config(**meta["config"]))
    sd = golden.weights("t5")
    sd["encoder.embed_tokens.weight"] = sd["shared.weight"]  # tied in HF, not stored
    model.load_state_dict(sd, strict=True)
    return TextEncoder.from_modules(tok, model, max_length=512)


@pytest.fixture(scope="session")
def tiny_pipe(golden):
    """A whole pipeline from the golden tiny parts: stride-4 VAE (64 px at 7 scales), 2-block transformer, tiny T5."""
    import infinity
    from infinity.config import ModelConfig
    from infinity.pipeline import InfinityPipeline

    tok = infinity.build_tokenizer("vae-golden-tiny", weights=golden.weights("vae"))
    tf = infinity.build_transformer("infinity-golden-tiny", weights=golden.weights("gpt"))
    cfg = ModelConfig(name="golden-tiny", tokenizer=tok.cfg, transformer=tf.cfg, text_encoder="tiny-t5",
                      budgets={"0.06M": 7, "tiny": 5}, default_budget="0.06M", h_div_w=(1.0, 0.75, 1.333),
                      defaults={"guidance": 3.0, "temperature": 1.0, "top_p": 0.0})
    return InfinityPipeline(tok, tf, tiny_t5_encoder(golden), cfg)


@pytest.fixture
def slow_scales(bundled_pipe, monkeypatch):
    """Each scale takes at least 0.25 s, so a four-image run lasts seconds on any machine and Cancel always lands
    mid-run (unslowed, the bundled model draws four images in about a second: a race the click could lose)."""
    step = bundled_pipe.transformer.step

    def slow(*args, **kwargs):
        time.sleep(0.25)
        return step(*args, **kwargs)

    monkeypatch.setattr(bundled_pipe.transformer, "step", slow)


# -- the app, served: one page for the app, compare and browser tests ------------------------------------------------
CHROMIUM = "/usr/bin/chromium"  # Debian's chromium, driven through Playwright (never `playwright install`)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync",
                 "--autoplay-policy=no-user-gesture-required"]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def launch():
    """`launch(pipe, root, **queue)` → (demo, url): the page on a free port, queued as asked (unbounded by
    default), launched as app.py does; every page it started is closed when the session ends."""
    import app

    demos = []

    def start(pipe, root, **queue):
        demo = app.build_demo(pipe, output_root=root)
        port = free_port()
        demo.queue(**queue).launch(prevent_thread_lock=True, server_port=port, server_name="127.0.0.1", quiet=True,
                                   **app.launch_kwargs(root))
        demos.append(demo)
        return demo, f"http://127.0.0.1:{port}/"

    yield start
    for demo in demos:
        demo.close()


class Served:
    """A launched page: its Blocks, URL and output folder, and the service over the same pipeline and folder
    (plain methods, for comparing what the page made with a direct call)."""

    def __init__(self, demo, url: str, root, studio):
        self.demo, self.url, self.root, self.studio = demo, url, root, studio


@pytest.fixture(scope="session")
def app_server(bundled_pipe, tmp_path_factory, launch) -> Served:
    """One page on the bundled model for the whole session: every request is independent of the others (its own
    output folder), so the app, compare and browser tests share it instead of each starting one."""
    pytest.importorskip("gradio")
    from webui import make_studio

    root = tmp_path_factory.mktemp("app-outputs")
    demo, url = launch(bundled_pipe, root)
    return Served(demo, url, root, make_studio(bundled_pipe, root))


@pytest.fixture(scope="session")
def app_client(app_server):
    """A gradio_client for the shared page."""
    gradio_client = pytest.importorskip("gradio_client")
    return gradio_client.Client(app_server.url, verbose=False)


@pytest.fixture(scope="session")
def chromium():
    """One headless chromium for the session's browser tests (each test opens its own context)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(chromium, request):
    """A fresh page (its own context) with the module's TIMEOUT_MS; fails the test on any JavaScript error."""
    ctx = chromium.new_context(viewport={"width": 1280, "height": 900})
    pg = ctx.new_page()
    pg.set_default_timeout(getattr(request.module, "TIMEOUT_MS", 120_000))
    errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    ctx.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
