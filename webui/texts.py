"""The page's words and look: titles, explanations, examples and CSS (no logic, no gradio)."""

BUSY = "busy, try again in a moment"  # a full queue's answer (page and API)
TITLE = "Infinity — bitwise autoregressive image generation"
INTRO = ("An image is drawn scale by scale, from a 1×1 grid up to the full latent grid: at each scale a transformer "
         "predicts the sign bits of what the coarser scales left out "
         "([arXiv 2412.04431](https://arxiv.org/abs/2412.04431)).")
FLIP_NOTE = ("**What you are looking at.** Both runs use the same prompt, seed and random draws; in the right one a "
             "share of the sampled bits is flipped at the chosen scales. Infinity is trained with *bitwise "
             "self-correction* (paper §3.3): during training, bits are flipped on purpose and the following scales "
             "learn to predict the residual that repairs them. The difference maps show how much of the damage is "
             "still visible after each later scale.")
TOKENIZER_NOTE = ("The tokenizer turns an image into bit maps, one per scale, each coding the residual the coarser "
                  "scales left. Flip bits at one scale to see what an error there does: kept as they are, later "
                  "scales cannot fix it; re-quantized after the flip (what self-correction trains the model to "
                  "predict, paper §3.3), they absorb most of it.")
RESPONSIBLE_USE = ("**Responsible use.** Images are machine-made and can be wrong, biased or offensive. Do not use "
                   "this demo to make deceptive pictures of real people, to harass anyone, or for sexual content. "
                   "Saved PNGs carry their prompt, seed and settings in the file metadata, so generated images stay "
                   "recognisable as such. The small bundled model only knows simple scenes and emoji; the 2B model "
                   "inherits the biases of its web-scale training data.")
# Prompts the bundled model draws well, checked from pixels with 6 seeds each (2026-11-30, small-v2 after its GPU
# stage): the circle 5 of 6 right in every attribute, the triangle, the square and the two squares 5–6 of 6; "hot
# pepper", "rocket", "guitar" and "sunflower" are the nearest emoji to their own image 4 of 4 times. Hearts pass
# the checker but look like bowls; stars, three of a kind and relations mostly fail (README, model card).
EXAMPLES = [
    "a red circle on a blue background",
    "a small yellow triangle in the top right on a black background",
    "two green squares on a white background",
    "a green square in the center on a pink background",
    "hot pepper",
    "rocket",
    "guitar",
    "sunflower",
]
PROMPT_PLACEHOLDER = "Describe the image you want"
CSS = """
.pixelated img, .pixelated video { image-rendering: pixelated; }
/* small results fill their frame (the files themselves stay at their real size, metadata and all) */
#result img, #var-image img, #planes img, #tok-planes img { width: 100%; height: 100%; object-fit: contain; }
/* an opened gallery thumbnail fills the gallery instead of staying at its natural few dozen pixels */
.pixelated .preview img, .pixelated button.thumbnail-item img { width: 100%; height: 100%; object-fit: contain; }
/* the ratio and resolution sliders hold positions in a list: the line under them says what they mean */
.choice-slider input[type=number], .choice-slider .reset-button { display: none; }
#intro p { margin-top: 0; }
#model-line, .size-line { opacity: .75; font-size: .9em; }
#footer { margin-top: 1.5em; opacity: .85; font-size: .9em; }
"""
# Closes the notices of earlier clicks when a new run starts, so an old error never sits over a new result.
CLEAR_TOASTS_JS = "() => { document.querySelectorAll('.toast-close').forEach((b) => b.click()); }"
