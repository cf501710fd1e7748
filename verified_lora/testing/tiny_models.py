"""Tiny transformers models with PEFT LoRA, built from a config (no downloads): whole-model audit targets.

``verified-lora audit verified_lora.testing.tiny_models:peft_llama`` audits every LoRA-carrying
module of a 1-layer Llama (grouped-query attention: k and v narrower than q) with LoRA on the
attention projections, the MLP and the token embedding. :func:`peft_gpt2` does the same for a
1-layer GPT-2 (transformers ``Conv1D`` layers, ``fan_in_fan_out``). :func:`save_adapter` and
:func:`load_adapter` show the documented path for a trained adapter saved with ``save_pretrained``:
rebuild the base model, load the adapter directory with ``PeftModel.from_pretrained``, audit that.

Every factory seeds torch itself, so a rebuilt base model has the same weights; adapters are created
with ``init_lora_weights=False`` (``B != 0``, as after training), so the "own weights" audit of each
module is not the degenerate ``B = 0`` start.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LLAMA_TARGETS", "GPT2_TARGETS", "UNET_ATTENTION", "llama_base", "peft_llama", "gpt2_base", "peft_gpt2",
           "save_adapter", "load_adapter", "diffusers_unet", "diffusers_unet_conv"]

LLAMA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "embed_tokens")
GPT2_TARGETS = ("c_attn", "c_proj", "c_fc", "wte")
#: the middle block's self- and cross-attention projections of :func:`diffusers_unet`
UNET_ATTENTION = r".*mid_block\.attentions\.0\.transformer_blocks\.0\.attn[12]\.(to_q|to_k|to_v|to_out\.0)"


def llama_base(seed: int = 0) -> Any:
    """A 1-layer ``LlamaForCausalLM`` (hidden 12, 4 heads of width 3, 2 key/value heads, vocab 10)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=10, hidden_size=12, intermediate_size=14, num_hidden_layers=1,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=16,
                      tie_word_embeddings=False)
    return LlamaForCausalLM(cfg)


def peft_llama(r: int = 2, alpha: float = 5.0, use_rslora: bool = False) -> Any:
    """``get_peft_model`` on :func:`llama_base` with LoRA on attention, MLP and ``embed_tokens``."""
    import torch
    from peft import LoraConfig, get_peft_model

    base = llama_base()
    torch.manual_seed(1)
    cfg = LoraConfig(r=r, lora_alpha=alpha, target_modules=list(LLAMA_TARGETS), lora_dropout=0.0,
                     init_lora_weights=False, use_rslora=use_rslora)
    return get_peft_model(base, cfg)


def gpt2_base(seed: int = 0) -> Any:
    """A 1-layer ``GPT2LMHeadModel`` (n_embd 8, 2 heads, vocab 11): transformers ``Conv1D`` layers."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=11, n_positions=16, n_embd=8, n_layer=1, n_head=2, tie_word_embeddings=False)
    return GPT2LMHeadModel(cfg)


def peft_gpt2(r: int = 2, alpha: float = 3.0) -> Any:
    """``get_peft_model`` on :func:`gpt2_base` with LoRA on ``c_attn``, ``c_proj``, ``c_fc`` and ``wte``."""
    import torch
    from peft import LoraConfig, get_peft_model

    base = gpt2_base()
    torch.manual_seed(1)
    cfg = LoraConfig(r=r, lora_alpha=alpha, target_modules=list(GPT2_TARGETS), lora_dropout=0.0,
                     init_lora_weights=False, fan_in_fan_out=True)
    return get_peft_model(base, cfg)


def _unet(target_modules: Any) -> Any:
    import torch
    from diffusers import UNet2DConditionModel
    from peft import LoraConfig

    torch.manual_seed(0)
    unet = UNet2DConditionModel(block_out_channels=(4, 8), layers_per_block=1, sample_size=8, in_channels=2,
                                out_channels=2, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=6,
                                norm_num_groups=2, attention_head_dim=2)
    torch.manual_seed(1)
    unet.add_adapter(LoraConfig(r=2, lora_alpha=3.0, init_lora_weights=False, target_modules=target_modules))
    return unet


def diffusers_unet() -> Any:
    """A tiny diffusers ``UNet2DConditionModel`` with LoRA added by diffusers' own ``add_adapter`` (its
    PEFT backend) on the middle block's attention (``to_q``, ``to_k``, ``to_v``, ``to_out.0``; the
    cross-attention ``to_k``/``to_v`` read the 6-wide text states)."""
    return _unet(UNET_ATTENTION)


def diffusers_unet_conv() -> Any:
    """:func:`diffusers_unet` plus LoRA on the middle block's two ``Conv2d`` (``resnets.0.conv1``/``conv2``)."""
    return _unet(f"(?:{UNET_ATTENTION})|(?:" + r".*mid_block\.resnets\.0\.conv[12])")


def save_adapter(path: str, **kwargs: Any) -> str:
    """Save the adapter of :func:`peft_llama` (``save_pretrained``) to the directory ``path``."""
    peft_llama(**kwargs).save_pretrained(path)
    return path


def load_adapter(path: str) -> Any:
    """:func:`llama_base` with the adapter directory ``path`` loaded by ``PeftModel.from_pretrained``."""
    from peft import PeftModel

    return PeftModel.from_pretrained(llama_base(), path)
