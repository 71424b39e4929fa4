"""Gradio pieces shared by the tabs: the upload box, how errors reach a person and an API client, display helpers
and the ZeroGPU wrapper."""
from __future__ import annotations

import logging
from contextlib import contextmanager

import gradio as gr
import torch
from PIL import Image

from infinity import viz
from infinity.validation import MAX_IMAGE_PIXELS, InvalidInput

log = logging.getLogger("infinity.app")
MODEL_EVENTS = dict(concurrency_id="model", concurrency_limit="default")  # every tab shares the model's slots
QUIET = dict(queue=False, api_visibility="private", show_progress="hidden")
# Cancel's own answer goes through the queue (no slot limit), so it reaches the page on the same stream as the
# cancelled run's updates and after them: unqueued, it could overtake a preview still in flight, which then
# overwrote "Cancelled" (seen in the Compare browser test).
AFTER_RUNS = dict(queue=True, concurrency_limit=None, api_visibility="private", show_progress="hidden")


def upload_image(**kw) -> gr.Image:
    """The upload box, as a file path. Gradio opens each upload's header before our code runs and, for a file
    that claims more pixels than Pillow allows, fails with a long technical message; this says it in one sentence
    instead. (Wrapped on the instance: a subclass would make Gradio write a type-stub file into the repo.)"""
    box = gr.Image(type="filepath", image_mode=None, **kw)
    inner = box.preprocess

    def preprocess(payload):
        try:
            return inner(payload)
        except gr.Error:
            raise
        except Image.DecompressionBombError:
            raise _error(f"the image is too large: at most {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels") from None
        except Exception:  # noqa: BLE001 - whatever Pillow cannot open is, to the user, not an image
            raise _error("the upload is not an image Pillow can read (PNG, JPEG, WebP, …)") from None

    box.preprocess = preprocess
    return box


def _error(message: str) -> gr.Error:
    # print_exception=False: a person's typo is not a server fault, so the log gets one line, not a traceback
    log.info("refused: %s", message)
    return gr.Error(message, print_exception=False)


def user_message(exc: BaseException) -> str:
    """The sentence shown for an error the request itself caused; frees GPU memory after running out of it."""
    if isinstance(exc, torch.OutOfMemoryError):
        if torch.cuda.is_available():
            torch.cuda.empty_cache()  # the next request starts clean
        return "Out of memory for this request: try a smaller resolution or fewer images."
    return str(exc)


@contextmanager
def api_errors():
    """API endpoints: bad input becomes a `gr.Error` (an AppError for gradio_client); the server keeps serving."""
    try:
        yield
    except (InvalidInput, torch.OutOfMemoryError) as e:
        raise _error(user_message(e)) from None


def notify(exc: BaseException) -> str:
    """Page events: the message as one notice (no red badges over every output), returned for the status line."""
    message = user_message(exc)
    log.info("refused: %s", message)
    gr.Warning(message, duration=10, title="Cannot run this")
    return f"**Cannot run this:** {message}"


def enlarge(image: Image.Image) -> Image.Image:
    """Nearest-neighbour enlargement for display: small images stay crisp instead of being blurred by the browser."""
    return viz.scale_frames([image], label=False)[0]


def wrap_gpu(studio) -> None:
    """On ZeroGPU every CUDA call has to happen inside a `spaces.GPU` function; whole service methods are wrapped
    (what they return crosses its process boundary). Only for a pipeline on CUDA: borrowing a GPU a CPU pipeline
    does not use would only cost quota."""
    try:
        import spaces
    except ImportError:
        return
    if studio.pipe.device.type == "cpu":
        return
    for name, seconds in gpu_durations(studio.pipe).items():
        setattr(studio, name, spaces.GPU(duration=seconds)(getattr(studio, name)))


def gpu_durations(pipe) -> dict:
    """Durations that follow the request: ZeroGPU calls each with the wrapped method's arguments (its settings) and
    borrows the GPU for that many seconds, so a small budget queues ahead of a 1024² one (`gpu_seconds`)."""
    from infinity.loading import gpu_seconds

    def per(runs):
        return lambda s, *a, **k: gpu_seconds(pipe.config, getattr(s, "resolution", None),
                                              getattr(s, "num_images", 1), runs)

    def compared(s, *a, **k):  # one run per variant (a preset has at most four)
        n = len(s.variants) if isinstance(s.variants, list) and s.variants else 4
        return gpu_seconds(pipe.config, s.resolution, 1, n)

    return {"generate_iter": per(1), "flip": per(2), "tokenize": per(0), "variation": per(1), "compare_iter": compared}
