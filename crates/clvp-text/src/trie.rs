//! HF's added-token `Trie` (`transformers/tokenization_python.py`, 5.23), ported statement by statement.
//!
//! The split is on Python `str` indices, i.e. on `char`s. For the default added tokens (`[STOP]`, `[UNK]`,
//! `<|endoftext|>`, none a prefix of another) it is a plain leftmost scan; the port also reproduces HF's
//! longest-match look-ahead for arbitrary added tokens loaded from a checkpoint.

use std::collections::BTreeMap;

/// One trie node: children by character, and whether a token ends here.
#[derive(Debug, Clone, Default)]
struct Node {
    children: BTreeMap<char, usize>,
    terminal: bool,
}

/// A trie over the added tokens.
#[derive(Debug, Clone)]
pub(crate) struct Trie {
    nodes: Vec<Node>,
}

impl Trie {
    /// A trie holding `tokens` (empty tokens are ignored, as in HF).
    pub(crate) fn new<'a>(tokens: impl IntoIterator<Item = &'a str>) -> Self {
        let mut trie = Self {
            nodes: vec![Node::default()],
        };
        for token in tokens {
            trie.add(token);
        }
        trie
    }

    fn add(&mut self, token: &str) {
        if token.is_empty() {
            return;
        }
        let mut node = 0;
        for c in token.chars() {
            node = match self.nodes[node].children.get(&c) {
                Some(&next) => next,
                None => {
                    let next = self.nodes.len();
                    self.nodes.push(Node::default());
                    self.nodes[node].children.insert(c, next);
                    next
                }
            };
        }
        self.nodes[node].terminal = true;
    }

    fn child(&self, node: usize, c: char) -> Option<usize> {
        self.nodes[node].children.get(&c).copied()
    }

    /// HF `Trie.split`: the text cut at the boundaries of the added tokens found (empty pieces dropped).
    pub(crate) fn split<'t>(&self, text: &'t str) -> Vec<&'t str> {
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        let n = chars.len();
        let char_at = |i: usize| chars.get(i).map(|&(_, c)| c);
        // Partial matches: (start, node), in insertion order (Python's OrderedDict).
        let mut states: Vec<(usize, usize)> = Vec::new();
        let mut offsets: Vec<usize> = vec![0];
        let mut skip = 0usize;

        for (current, &(_, current_char)) in chars.iter().enumerate() {
            if skip != 0 && current < skip {
                continue;
            }
            let mut to_remove: Vec<usize> = Vec::new();
            let mut reset = false;

            for idx in 0..states.len() {
                let (mut start, node) = states[idx];
                if self.nodes[node].terminal {
                    // A full match: look ahead for the longest match among the states that start no later.
                    let mut end = current;
                    for &(lookstart, mut looknode) in &states {
                        let mut lookahead_index;
                        if lookstart > start {
                            break;
                        } else if lookstart < start {
                            lookahead_index = current + 1;
                            end = current + 1;
                        } else {
                            lookahead_index = current;
                            end = current;
                        }
                        let mut next_char = char_at(lookahead_index);
                        if self.nodes[looknode].terminal {
                            start = lookstart;
                            end = lookahead_index;
                            skip = lookahead_index;
                        }
                        while let Some(next) = next_char.and_then(|c| self.child(looknode, c)) {
                            looknode = next;
                            lookahead_index += 1;
                            if self.nodes[looknode].terminal {
                                start = lookstart;
                                end = lookahead_index;
                                skip = lookahead_index;
                            }
                            if lookahead_index == n {
                                break;
                            }
                            next_char = char_at(lookahead_index);
                        }
                    }
                    offsets.push(start);
                    offsets.push(end);
                    reset = true;
                    break;
                } else if let Some(next) = self.child(node, current_char) {
                    states[idx].1 = next;
                } else {
                    to_remove.push(start);
                }
            }

            if reset {
                states.clear();
            } else {
                states.retain(|(start, _)| !to_remove.contains(start));
            }
            if current >= skip
                && let Some(node) = self.child(0, current_char)
            {
                // Python's dict assignment keeps an existing key's position.
                match states.iter_mut().find(|(start, _)| *start == current) {
                    Some(state) => state.1 = node,
                    None => states.push((current, node)),
                }
            }
        }

        // A match that runs to the end of the text.
        if let Some(&(start, _)) = states.iter().find(|&&(_, node)| self.nodes[node].terminal) {
            offsets.push(start);
            offsets.push(n);
        }

        cut_text(text, &chars, offsets)
    }
}

/// HF `Trie.cut_text`: cut at the char offsets, skipping empty and backwards cuts.
fn cut_text<'t>(text: &'t str, chars: &[(usize, char)], mut offsets: Vec<usize>) -> Vec<&'t str> {
    let byte_at = |i: usize| chars.get(i).map_or(text.len(), |&(b, _)| b);
    offsets.push(chars.len());
    let mut pieces = Vec::new();
    let mut start = 0;
    for end in offsets {
        if start >= end {
            continue;
        }
        pieces.push(&text[byte_at(start)..byte_at(end)]);
        start = end;
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected splits are the examples of HF's `Trie.split` docstring and tests.

    #[test]
    fn hf_docstring_examples() {
        let trie = Trie::new(["[CLS]", "extra_id_1", "extra_id_100"]);
        assert_eq!(
            trie.split("[CLS] This is a extra_id_100"),
            ["[CLS]", " This is a ", "extra_id_100"]
        );
        let trie = Trie::new(["A", "P", "[SPECIAL]"]);
        assert_eq!(trie.split("[SPECIAL][CLS]A"), ["[SPECIAL]", "[CLS]", "A"]);
    }

    #[test]
    fn hf_trie_tests() {
        let trie = Trie::new(["AB", "B", "C"]);
        assert_eq!(trie.split("ABC"), ["AB", "C"]);
        let trie = Trie::new(["ABC", "B", "CD"]);
        assert_eq!(trie.split("ABCD"), ["ABC", "D"]);
        let trie = Trie::new(["TOKEN]", "[SPECIAL_TOKEN]"]);
        assert_eq!(
            trie.split("This is something [SPECIAL_TOKEN]"),
            ["This is something ", "[SPECIAL_TOKEN]"]
        );
        let trie = Trie::new(["A", "B", "C"]);
        assert_eq!(trie.split("ABC"), ["A", "B", "C"]);
        let trie = Trie::new(["tokenizer", "token"]);
        assert_eq!(trie.split("tokenizer"), ["tokenizer"]);
    }

    #[test]
    fn default_tokens_and_multibyte_text() {
        let trie = Trie::new(["[STOP]", "[UNK]", "<|endoftext|>"]);
        assert_eq!(trie.split("x [STOP] y"), ["x ", "[STOP]", " y"]);
        assert_eq!(
            trie.split("[UNK][STOP]<|endoftext|>"),
            ["[UNK]", "[STOP]", "<|endoftext|>"]
        );
        assert_eq!(trie.split("é[ST[STOP]ü"), ["é[ST", "[STOP]", "ü"]);
        assert_eq!(trie.split(""), Vec::<&str>::new());
    }
}
