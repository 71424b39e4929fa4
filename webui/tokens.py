"""The Tokenizer tab's work without gradio: an upload's per-scale bits and reconstructions, flips at one scale, and
variations that keep an image's first scales. Mixed into `service.Studio` (it uses its pipeline and store)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch
from PIL import Image

from infinity import viz
from infinity.images import psnr
from infinity.pipeline import preview_grid
from infinity.sampling import flip_bits
from infinity.tokenizer import quantizer as Q
from infinity.validation import InvalidInput, check_scale, check_seed, check_share, check_whole, open_image

from .results import Tokenized, Varied
from .settings import TokenizeSettings, VariationSettings


class TokenizerMixin:
    """Needs `self.pipe`, `self.store`, `self.upload_dir` (a callable giving the folder uploads are saved in)."""

    # -- uploads ---------------------------------------------------------------------------------------------
    def _own_upload(self, path) -> Path:
        """`path` if it lies (links and '..' resolved) in the upload folder; anything else is refused unopened, so
        no string from a request is ever opened as a file."""
        p = Path(path).resolve()
        if self.upload_dir is None or not p.is_relative_to(Path(self.upload_dir()).resolve()):
            raise InvalidInput("the upload is not an image")
        return p

    def check_image(self, image) -> Image.Image:
        """Uploads arrive as the path of the file the server saved (only its header was read), so size and damage
        are judged here, before decoding."""
        return open_image(self._own_upload(image) if isinstance(image, (str, os.PathLike)) else image)

    def image_ratio(self, image) -> float:
        """h/w of an upload from its header only (to label resolutions as soon as a file arrives); the default
        ratio when there is none or it cannot be read (the request itself will say why)."""
        try:
            if isinstance(image, Image.Image):
                return image.height / image.width
            with Image.open(self._own_upload(image)) as im:
                return im.height / im.width
        except Exception:  # noqa: BLE001 - any unreadable header
            return self.default_ratio()

    # -- bits and reconstructions ------------------------------------------------------------------------------
    def _encode(self, image: Image.Image, budget):
        img, pyr = self.pipe.encode_image(image, budget=budget)  # the pipeline judges the budget
        return img, list(pyr.bits)

    def _decode_bits(self, bits: Sequence[torch.Tensor]) -> list[Image.Image]:
        """Previews after each scale from (possibly flipped) bits."""
        full = tuple(bits[-1].shape[1:3])
        return [self.pipe.decode(s, preview_grid(b.shape[1:3], full))[0]
                for s, b in zip(Q.bits_to_codes_sum(bits, full), bits)]

    @torch.no_grad()
    def _requantize(self, img: Image.Image, budget: str, scale: int, mask: torch.Tensor) -> Image.Image:
        """Quantize again with the flip applied, so every later scale codes what the flipped bits left: the labels
        bitwise self-correction trains on (paper §3.3)."""
        _, pyr = self.pipe.encode_image(img, img.height / img.width, budget,
                                        flip=lambda s, b: b ^ mask.to(b) if s == scale else b)
        return self.pipe.decode(pyr.codes_sum[-1])[0]

    # -- the two requests ---------------------------------------------------------------------------------------
    def tokenize(self, s: TokenizeSettings) -> Tokenized:
        """Per-scale reconstructions and bit maps of an image; with a share > 0, the effect of flipping that share
        of one scale's bits, once with the later scales kept and once re-quantized after the flip."""
        image = self.check_image(s.image)
        share, flip_seed = check_share(s.flip_share), check_seed(s.flip_seed)
        budget = s.resolution or self.cfg.default_budget
        img, bits = self._encode(image, budget)
        K = len(bits)
        scale = K // 2 if s.flip_scale in (None, "") else check_scale(s.flip_scale, K, "flip scale")
        hws = [tuple(b.shape[1:3]) for b in bits]
        recon = self._decode_bits(bits)
        folder = self.store.new_dir("tokenize")
        info = dict(size=[img.width, img.height], scales=[list(hw) for hw in hws], bits_per_position=bits[0].shape[-1],
                    psnr_reconstruction=round(psnr(img, recon[-1]), 2))
        out = Tokenized(input=img, recon=recon, hws=hws, scale=scale, info=info,
                        bitmaps=[viz.bit_plane_grid(b[0].cpu()) for b in bits],
                        recon_png=viz.save_png(recon[-1], folder / "reconstruction.png", {"budget": budget, "scales": K}),
                        scale_pngs=[viz.save_png(r, folder / f"scale-{k + 1}.png", {"scale": k, "grid": list(hw)})
                                    for k, (r, hw) in enumerate(zip(recon, hws))])
        if share > 0:
            self._flip_one_scale(out, img, bits, budget, scale, share, flip_seed, folder)
        return out

    def _flip_one_scale(self, out: Tokenized, img, bits, budget, scale, share, flip_seed, folder) -> None:
        """Fills `out`'s flip fields and adds what the flip did to `out.info`."""
        g = torch.Generator(bits[scale].device).manual_seed(flip_seed)
        kept_bits = list(bits)
        kept_bits[scale], mask = flip_bits(bits[scale], share, g)
        kept = self._decode_bits(kept_bits)[-1]
        requant = self._requantize(img, budget, scale, mask)
        planes = viz.bit_plane_grid(kept_bits[scale][0].cpu(), mask[0].cpu())
        meta = {"budget": budget, "flip_share": share, "flip_scale": scale, "flip_seed": flip_seed}
        out.kept, out.requantized, out.planes = kept, requant, planes
        out.kept_png = viz.save_png(kept, folder / "flipped-later-kept.png", meta)
        out.requantized_png = viz.save_png(requant, folder / "flipped-later-requantized.png", meta)
        recon = out.recon[-1]
        out.info.update(flip_share=share, flip_scale=scale, flip_seed=flip_seed, flipped_bits=int(mask.sum()),
                        psnr_flipped_later_kept=round(psnr(recon, kept), 2),
                        psnr_flipped_later_requantized=round(psnr(recon, requant), 2))

    def variation(self, s: VariationSettings) -> Varied:
        """Keep the first `keep_scales` scales of an image's bits and let the model draw the rest from `prompt`."""
        image = self.check_image(s.image)
        budget = s.resolution or self.cfg.default_budget
        img, bits = self._encode(image, budget)
        keep = check_whole(s.keep_scales, "scales to keep", 0, len(bits))
        run = None
        for run in self._run(s.prompt, s.seed, h_div_w=img.height / img.width, budget=budget, forced_bits=bits[:keep]):
            pass
        recon = self._decode_bits(bits)
        folder = self.store.new_dir("variation")
        pairs = viz.side_by_side(viz.scale_frames(recon, hws=run.schedule), viz.scale_frames(run.previews,
                                 hws=run.schedule), titles=("uploaded", f"variation (first {keep} kept)"))
        return Varied(run=run, pairs=pairs,
                      png=viz.save_png(run.image, folder / f"variation-seed-{run.settings['seed']}.png",
                                       self.metadata(run, keep_scales=keep, source="uploaded image")),
                      mp4=viz.write_mp4(pairs, folder / "variation.mp4", fps=2),
                      info=dict(seed=run.settings["seed"], keep_scales=keep, settings=run.settings,
                                scales=[list(hw) for hw in run.schedule]))
