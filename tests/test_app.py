"""The Gradio app on the bundled model: a real server on a free port, driven through gradio_client.

The whole module shares one server (starting it loads the model once); each request takes well under a second.
"""
import os
import time
from pathlib import Path
from urllib.parse import parse_qsl

import numpy as np
import pytest
from PIL import Image, ImageDraw

gr = pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")

import app  # noqa: E402
from infinity import viz  # noqa: E402
from infinity.validation import InvalidInput  # noqa: E402
from webui import links  # noqa: E402
from webui.service import OutputStore  # noqa: E402

PROMPT = "a red circle on a blue background"
# gradio's queue uses pandas options that pandas 3 deprecates; nothing this project can act on
pytestmark = pytest.mark.filterwarnings("ignore:.*:Warning:gradio.queueing")


@pytest.fixture(scope="module")
def pipe(bundled_pipe):
    return bundled_pipe


@pytest.fixture(scope="module")
def client(app_client):
    """gradio_client for the session's page (conftest `app_server`)."""
    return app_client


@pytest.fixture(scope="module")
def studio(app_server):
    """The service the page runs on, over the same pipeline and output folder (plain methods, no gradio)."""
    return app_server.studio


def generate(client, seed, **kw):
    return client.predict(prompt=kw.pop("prompt", PROMPT), seed=seed, randomize_seed=False, api_name="/generate", **kw)


def pixels(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def mp4_props(path) -> dict:
    import imageio_ffmpeg

    frames = imageio_ffmpeg.read_frames(str(path))
    meta = next(frames)
    frames.close()
    return meta


# ----------------------------------------------------------------------------------------------------------------
def test_named_endpoints(client):
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert names == {"/generate", "/flip", "/compare", "/tokenize", "/variation"}


def test_page_says_what_the_model_knows_and_shows_good_examples(app_server, pipe):
    """Issue 12: one line near the top says what the bundled model draws; the first example is one it draws well."""
    from webui import texts
    from infinity.eval.checker import check

    demo = app_server.demo
    markdown = " ".join(str(c.get("props", {}).get("value", "")) for c in demo.config["components"])
    assert pipe.config.card and pipe.config.card in markdown and "Not photos" in pipe.config.card
    assert check(pipe(texts.EXAMPLES[0], seed=0).images[0], texts.EXAMPLES[0])["overall"]


def test_choices_in_real_pixels(studio, pipe):
    assert studio.budget_label(1.0, "0.004M") == "64×64 px (0.004M)"
    labels = dict(studio.ratio_choices())
    assert labels["1:1"] == 1.0 and labels["4:3"] == 0.75  # width:height
    H, W = pipe.pixel_size(0.75, "0.004M")  # (height, width)
    assert studio.budget_label(0.75, "0.004M") == f"{W}×{H} px (0.004M)" and W > H
    assert studio.scale_choices(1.0, "0.004M")[2] == ("3: 4×4", 2)


def test_grids_are_written_width_by_height_like_resolutions(studio, pipe):
    """Point 9: a 4:3 schedule's last grid reads w×h (wider than high), as the resolution label does."""
    h, w = pipe.schedule(0.75, "0.016M")[-1]
    assert w > h
    assert studio.scale_choices(0.75, "0.016M")[-1][0].endswith(f"{w}×{h}")
    assert studio.budget_label(0.75, "0.016M").startswith(f"{w * 8}×{h * 8} px")


def test_generate_image_animation_and_metadata(client):
    pngs, mp4, gif, info = generate(client, 11)
    assert len(pngs) == 1 and Path(pngs[0]).is_file()
    meta = viz.read_png_metadata(pngs[0])
    assert meta["prompt"] == PROMPT and meta["seed"] == 11 and meta["budget"] == "0.016M"
    assert pixels(pngs[0]).shape == (128, 128, 3)
    props = mp4_props(mp4)  # plays in browsers: H.264, 4:2:0, even sizes
    assert props["codec"] == "h264" and props["pix_fmt"].startswith("yuv420p")
    assert all(n % 2 == 0 for n in props["size"])
    assert Path(gif).read_bytes()[:4] == b"GIF8"
    assert info["seed"] == 11 and info["settings"]["prompt"] == PROMPT
    assert dict(parse_qsl(info["share_query"]))["seed"] == "11"


def test_same_seed_same_pixels_and_seed_per_image(client):
    two = generate(client, 5, num_images=2)[0]
    one = generate(client, 5)[0]
    next_seed = generate(client, 6)[0]
    assert np.array_equal(pixels(two[0]), pixels(one[0]))
    assert np.array_equal(pixels(two[1]), pixels(next_seed[0]))  # image i of a batch is seed + i on its own
    assert viz.read_png_metadata(two[1])["seed"] == 6


def test_flip_endpoint(client):
    clean, flipped, mp4, planes, info = client.predict(prompt="red apple", seed=3, flip_share=0.3, flip_scales=[2],
                                                       inspect_scale=2, flip_seed=1, api_name="/flip")
    for p in (clean, flipped, planes):
        assert Path(p).is_file()
    assert mp4_props(mp4)["codec"] == "h264"
    rows = info["scales"]
    assert [r["flipped_bits"] > 0 for r in rows] == [k == 2 for k in range(len(rows))]
    assert all(r["mean_abs_diff"] == 0 for r in rows[:2])  # same draws before the first flip
    assert viz.read_png_metadata(flipped)["flip_scales"] == [2]
    # the clean run is the plain generation of that seed
    plain = client.predict(prompt="red apple", seed=3, randomize_seed=False, api_name="/generate")[0][0]
    assert np.array_equal(pixels(clean), pixels(plain))


def upload(tmp_path) -> str:
    im = Image.new("RGB", (48, 40), (30, 60, 200))
    ImageDraw.Draw(im).ellipse((12, 8, 36, 32), fill=(220, 30, 30))
    path = tmp_path / "upload.png"
    im.save(path)
    return str(path)


def test_tokenize_endpoint(client, tmp_path):
    recon, per_scale, kept, requant, info = client.predict(
        image=gradio_client.handle_file(upload(tmp_path)), flip_share=0.25, flip_scale=2, flip_seed=0,
        api_name="/tokenize")
    K = len(info["scales"])
    assert len(per_scale) == K and all(Path(p).is_file() for p in per_scale)
    assert np.array_equal(pixels(per_scale[-1]), pixels(recon))
    assert info["flipped_bits"] > 0 and Path(kept).is_file() and Path(requant).is_file()
    assert info["size"][0] > info["size"][1]  # a landscape upload keeps a landscape ratio
    # without a share nothing is flipped
    out = client.predict(image=gradio_client.handle_file(upload(tmp_path)), flip_share=0, api_name="/tokenize")
    assert out[2] is None and out[3] is None and "flipped_bits" not in out[4]


def test_variation_endpoint(client, tmp_path):
    png, mp4, info = client.predict(image=gradio_client.handle_file(upload(tmp_path)), prompt="sunflower",
                                    keep_scales=2, seed=1, api_name="/variation")
    assert Path(png).is_file() and Path(mp4).is_file() and info["keep_scales"] == 2
    # keeping every scale leaves nothing to generate: the variation is the reconstruction itself
    recon_scales = client.predict(image=gradio_client.handle_file(upload(tmp_path)), flip_share=0,
                                  api_name="/tokenize")[1]
    all_kept = client.predict(image=gradio_client.handle_file(upload(tmp_path)), prompt="sunflower",
                              keep_scales=len(recon_scales), seed=1, api_name="/variation")[0]
    assert np.array_equal(pixels(all_kept), pixels(recon_scales[-1]))


def test_share_link_restores_settings(studio):
    query = {"prompt": "red apple", "seed": "42", "ratio": "4:3", "resolution": "0.016M", "guidance": "2.5",
             "temperature": "0.6", "n": "2", "greedy": "1", "flip_share": "0.1", "flip_scales": "1,3",
             "inspect": "3", "flip_seed": "9", "unknown": "x"}
    s = links.settings_from_query(studio, query)
    assert (s["prompt"], s["seed"], s["aspect_ratio"], s["resolution"], s["guidance"], s["temperature"]) == \
        ("red apple", 42, 0.75, "0.016M", 2.5, 0.6)
    assert (s["num_images"], s["greedy"], s["flip_share"], s["flip_scales"], s["inspect_scale"], s["flip_seed"]) == \
        (2, True, 0.1, [1, 3], 3, 9)
    assert s["autorun"] and not s["randomize_seed"] and s["ignored"] == []
    # what the page writes into its URL reads back to the same settings
    again = links.settings_from_query(studio, dict(parse_qsl(links.query_from_settings(studio, s))))
    assert {k: again[k] for k in links.FIELDS} == {k: s[k] for k in links.FIELDS}


def test_share_link_ignores_bad_values(studio):
    d = studio.defaults()
    s = links.settings_from_query(studio, {"seed": "-5", "temperature": "0", "n": "2.5", "ratio": "7:3",
                                           "resolution": "../../etc", "flip_scales": "1,99"})
    assert sorted(s["ignored"]) == ["flip_scales", "n", "ratio", "resolution", "seed", "temperature"]
    assert (s["seed"], s["temperature"], s["num_images"], s["aspect_ratio"], s["resolution"], s["flip_scales"]) == \
        (d["seed"], d["temperature"], 1, d["aspect_ratio"], d["resolution"], d["flip_scales"])
    plain = links.settings_from_query(studio, {})
    assert not plain["autorun"] and plain["randomize_seed"]


def test_invalid_input_is_reported_and_server_keeps_serving(client):
    with pytest.raises(gradio_client.exceptions.AppError, match="prompt is empty"):
        generate(client, 1, prompt="   ")
    with pytest.raises(gradio_client.exceptions.AppError, match="seed"):
        generate(client, -5)
    with pytest.raises(gradio_client.exceptions.AppError, match="at least one scale"):
        client.predict(prompt="red apple", seed=1, flip_scales=[], api_name="/flip")
    pngs, *_ = generate(client, 2)
    assert Path(pngs[0]).is_file()


def test_full_queue_says_busy_and_server_keeps_serving(pipe, slow_scales, launch, tmp_path):
    """A burst past the queue (one running, one waiting) is told "busy, try again in a moment" at once, through
    gradio_client's own error, not Gradio's "Queue is full" wording; the server then serves the next request."""
    from webui.texts import BUSY

    demo, url = launch(pipe, tmp_path, max_size=1)
    try:
        client = gradio_client.Client(url, verbose=False)
        jobs = [client.submit(prompt=PROMPT, seed=i, randomize_seed=False, api_name="/generate") for i in range(5)]
        outcomes = []
        for job in jobs:
            try:
                outcomes.append(Path(job.result(timeout=300)[0][0]).is_file())
            except Exception as e:  # noqa: BLE001 - the refusal's type belongs to gradio_client; its words to us
                outcomes.append(str(e))
        refused = [o for o in outcomes if o is not True]
        assert True in outcomes and refused, outcomes
        assert all(BUSY in o for o in refused), refused
        assert Path(generate(client, 9)[0][0]).is_file()
    finally:
        demo.close()


def test_control_characters_and_mixed_scripts_generate(client):
    pngs, _, _, info = generate(client, 3, prompt="красный\x00 круг\x1b 赤い丸 دائرة 🍎\u202e")
    clean = "красный круг 赤い丸 دائرة 🍎\u202e"  # control characters dropped, every script kept
    assert info["settings"]["prompt"] == clean and viz.read_png_metadata(pngs[0])["prompt"] == clean
    assert not info["prompt_truncated"]
    huge, *_, huge_info = generate(client, 4, prompt="apple " * 3000)
    assert Path(huge[0]).is_file() and huge_info["prompt_truncated"]


def test_outputs_stay_in_the_app_folder(app_server, client):
    root = app_server.root
    generate(client, 8, prompt="../../evil name")
    folders = [p for p in Path(root).iterdir() if p.name.startswith("req-generate-")]
    assert folders and all(p.parent == Path(root) for p in folders)
    names = {f.name for p in folders for f in p.iterdir()}
    assert not any("evil" in n for n in names)
    assert [str(Path(root).resolve())] == app.launch_kwargs(root)["allowed_paths"]


def test_output_store_prunes_only_its_old_folders(tmp_path):
    store = OutputStore(tmp_path, max_age_s=60)
    old, fresh = store.new_dir("generate"), store.new_dir("generate")
    foreign = tmp_path / "keep-me"
    foreign.mkdir()
    past = time.time() - 3600
    os.utime(old, (past, past))
    os.utime(foreign, (past, past))
    store.prune()
    assert not old.exists() and fresh.exists() and foreign.exists()
    assert fresh.parent == tmp_path.resolve()


def test_command_line_and_environment(monkeypatch):
    monkeypatch.setenv("INFINITY_MODEL", "some/model")
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "7999")
    a = app.parse_args([])
    assert (a.model, a.host, a.port, a.share, a.concurrency) == ("some/model", "0.0.0.0", 7999, False, 1)
    assert app.parse_args(["--model", "x", "--port", "1234", "--share"]).port == 1234

    calls = []
    monkeypatch.setattr(app.InfinityPipeline, "from_pretrained", classmethod(lambda cls, *a, **k: calls.append((a, k))))
    monkeypatch.setattr(app.torch.cuda, "is_available", lambda: False)
    app.load_pipeline("FoundationVision/Infinity")  # the 2B model only with a GPU: the bundled one instead
    app.load_pipeline(None, int8=True)
    assert calls == [((), {"device": "cpu", "int8": False}), ((), {"device": "cpu", "int8": True})]


@pytest.mark.slow
def test_load_script_serves_concurrent_users_identically():
    """bench/load.py with a small N: every user served, each result equal to the same request run alone."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "bench/load.py", "--users", "4"], capture_output=True, text=True, timeout=600,
                       cwd=Path(__file__).resolve().parent.parent)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert '"failed": 0' in r.stdout


def test_overlong_prompt_is_cut_and_reported(client):
    pngs, mp4, gif, info = client.predict(prompt="a red circle on a blue background " * 400, seed=1,
                                          randomize_seed=False, api_name="/generate")
    assert info["prompt_truncated"] is True
    pngs, mp4, gif, info = client.predict(prompt="a red circle", seed=1, randomize_seed=False, api_name="/generate")
    assert info["prompt_truncated"] is False


def test_out_of_memory_gives_a_message_and_the_next_request_works(client, pipe, monkeypatch):
    import torch

    real = pipe.stream
    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 1:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(*a, **k)

    monkeypatch.setattr(pipe, "stream", flaky)
    with pytest.raises(Exception, match="Out of memory"):
        client.predict(prompt="sunflower", seed=1, randomize_seed=False, api_name="/generate")
    pngs, *_ = client.predict(prompt="sunflower", seed=1, randomize_seed=False, api_name="/generate")
    assert Path(pngs[0]).is_file()


def test_hostile_uploads_get_clear_errors_and_server_keeps_serving(client, studio, tmp_path, png_header):
    cases = {
        png_header(tmp_path / "bomb.png", 8000, 6000): "too large",      # our cap, read from the header
        png_header(tmp_path / "huge.png", 20000, 20000): "too large",    # past Pillow's own bomb limit
        str(tmp_path / "text.png"): "not an image",
        str(tmp_path / "cut.png"): "damaged or truncated",
    }
    (tmp_path / "text.png").write_text("not a picture")
    data = Path(upload(tmp_path)).read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    for path, msg in cases.items():
        with pytest.raises(gradio_client.exceptions.AppError, match=msg):
            client.predict(image=gradio_client.handle_file(path), flip_share=0, api_name="/tokenize")
    # a path that did not come through the upload folder is never opened, however it reaches the code
    with pytest.raises(InvalidInput, match="not an image"):
        studio.check_image(upload(tmp_path))
    with pytest.raises(InvalidInput, match="not an image"):
        studio.check_image("/etc/passwd")
    out = client.predict(image=gradio_client.handle_file(upload(tmp_path)), flip_share=0, api_name="/tokenize")
    assert Path(out[0]).is_file()


def test_out_of_range_values_get_the_pipelines_words(client, pipe):
    """Point 4: the API hands values to the pipeline as given (no clamping by a slider) and the words are the
    pipeline's own, the same the page shows."""
    from infinity.validation import InvalidInput

    for kw in (dict(guidance=1e6), dict(guidance=-5), dict(temperature=0), dict(num_images=10)):
        with pytest.raises(InvalidInput) as direct:
            pipe.check_inputs(PROMPT, 1, **{k: v for k, v in kw.items()})
        with pytest.raises(gradio_client.exceptions.AppError) as served:
            generate(client, 1, **kw)
        assert str(direct.value) in str(served.value)


def test_user_errors_log_one_line_not_a_traceback(client, capfd):
    """Point 10: a refused request is a person's mistake, not a server fault: no traceback in the log."""
    capfd.readouterr()
    with pytest.raises(gradio_client.exceptions.AppError):
        generate(client, 1, prompt="  ")
    with pytest.raises(gradio_client.exceptions.AppError):
        client.predict(prompt="red apple", seed=1, flip_scales=[], api_name="/flip")
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err


def test_readme_client_example_runs_against_the_app(client):
    """README's gradio_client example, pointed at this test's server."""
    import re

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    code = next(b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S) if "Client(" in b)
    scope = {}
    exec(code.replace("http://127.0.0.1:7860/", client.src), scope)  # noqa: S102 - our own README
    assert Path(scope["pngs"][0]).is_file() and scope["info"]["seed"] == 7
