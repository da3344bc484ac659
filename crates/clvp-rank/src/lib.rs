//! Contrastive scoring and ranking of CLVP speech candidates against a text.
