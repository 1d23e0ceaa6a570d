"""Hypothesis strategy: random valid transformer configs across every supported family."""

from hypothesis import strategies as st


@st.composite
def hf_configs(draw) -> dict:
    """A dict of transformers config kwargs for a small random model of any supported family."""
    family = draw(st.sampled_from(["bert", "gpt2", "llama", "phi", "t5"]))
    heads = draw(st.integers(1, 6))
    # RoPE rotates pairs of dimensions: LLaMA needs an even head_dim, Phi (half rotated) a multiple of 4.
    step = {"llama": 2, "phi": 4}.get(family, 1)
    hd = step * draw(st.integers(1, 16 // step))
    d = heads * hd
    d_ff = draw(st.integers(1, 96))
    layers = draw(st.integers(1, 3))
    vocab = draw(st.integers(2, 300))
    if family == "bert":
        return dict(model_type="bert", hidden_size=d, num_attention_heads=heads, num_hidden_layers=layers,
                    intermediate_size=d_ff, vocab_size=vocab, max_position_embeddings=512,
                    hidden_act=draw(st.sampled_from(["gelu", "relu"])))
    if family == "gpt2":
        return dict(model_type="gpt2", n_embd=d, n_head=heads, n_layer=layers, n_inner=d_ff,
                    vocab_size=vocab, n_positions=512)
    if family == "llama":
        kv = draw(st.sampled_from([k for k in range(1, heads + 1) if heads % k == 0]))
        return dict(model_type="llama", hidden_size=d, num_attention_heads=heads, num_key_value_heads=kv,
                    num_hidden_layers=layers, intermediate_size=d_ff, vocab_size=vocab,
                    tie_word_embeddings=draw(st.booleans()))
    if family == "phi":
        return dict(model_type="phi", hidden_size=d, num_attention_heads=heads, num_hidden_layers=layers,
                    intermediate_size=d_ff, vocab_size=vocab, partial_rotary_factor=0.5)
    return dict(model_type="t5", d_model=draw(st.integers(1, 64)), d_kv=hd, num_heads=heads, d_ff=d_ff,
                num_layers=layers, num_decoder_layers=draw(st.integers(1, 3)), vocab_size=vocab,
                feed_forward_proj=draw(st.sampled_from(["relu", "gated-gelu"])))
