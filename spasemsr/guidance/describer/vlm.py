"""The ``vlm`` describer: a local vision-language model (the paper uses LLaVA) asked about the degradations.

transformers is imported only when this backend is built. Decoding is greedy, so a caption is a
function of the image and the weights.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.transforms.functional import to_pil_image

from spasemsr.weights import require_model_folder

PROMPT = (
    "Describe the quality of this low-resolution photo in one short sentence: say how blurry, how noisy "
    "and how JPEG-compressed it is."
)


class VLMDescriber:
    """Captions from any ``AutoModelForImageTextToText`` folder whose processor has a chat template."""

    def __init__(self, path: str, max_new_tokens: int = 40, prompt: str = PROMPT, device: str = "cpu",
                 dtype: str = "float32") -> None:
        folder = require_model_folder(
            path, "(vlm describer) a local Hugging Face vision-language model folder (model weights, config, "
            "processor and tokenizer files, chat template), e.g. a copy of llava-hf/llava-1.5-7b-hf made with "
            "save_pretrained or `hf download`"
        )
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
        self.processor.tokenizer.padding_side = "left"  # a batch must end where generation starts
        self.model = AutoModelForImageTextToText.from_pretrained(
            folder, local_files_only=True, dtype=getattr(torch, dtype)
        ).to(device).eval()
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
        self.text = self.processor.apply_chat_template(messages, add_generation_prompt=True)
        self.max_new_tokens = max_new_tokens

    @torch.no_grad()
    def __call__(self, lr: Tensor, params: dict[str, Tensor] | None = None) -> list[str]:
        images = [to_pil_image(image) for image in lr.detach().clamp(0, 1).float().cpu()]
        inputs = self.processor(images=images, text=[self.text] * len(images), return_tensors="pt", padding=True)
        inputs = inputs.to(self.model.device, dtype=self.model.dtype)  # casts only the pixel values
        output = self.model.generate(**inputs, do_sample=False, max_new_tokens=self.max_new_tokens)
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        return [text.strip() for text in self.processor.batch_decode(new_tokens, skip_special_tokens=True)]
