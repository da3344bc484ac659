//! EnCodec neural audio codec in burn: SEANet encoder/decoder, residual VQ, the 24/48/32 kHz models
//! and Meta's `.ecdc` container.
