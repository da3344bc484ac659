//! Which shard this process runs: `--shard I --num-shards N`, else a Slurm array task's or a Kubernetes
//! Indexed Job's index. An item belongs to shard `u64(sha256(id)[..8]) mod N` (big-endian), a function of the id
//! alone: every item lands in exactly one shard for any N, whatever the manifest's order.

use anyhow::{Result, bail};
use sha2::{Digest, Sha256};

/// One shard of N.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
    /// Where the index came from, for messages.
    pub from: &'static str,
}

impl Shard {
    /// Does `id` belong to this shard?
    pub fn holds(&self, id: &str) -> bool {
        shard_of(id, self.count) == self.index
    }

    /// The shard's file stem: `shard-00002-of-00004`.
    pub fn stem(&self) -> String {
        format!("shard-{:05}-of-{:05}", self.index, self.count)
    }
}

/// The shard of `id` among `count`.
pub fn shard_of(id: &str, count: usize) -> usize {
    let digest = Sha256::digest(id.as_bytes());
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(head) % count.max(1) as u64) as usize
}

/// The environment a shard may come from.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process's environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

fn number(env: &dyn Env, name: &str) -> Result<Option<usize>> {
    match env.var(name) {
        None => Ok(None),
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) => Ok(Some(n)),
            Err(_) => bail!("{name}={v:?} is not a whole number"),
        },
    }
}

/// The shard of this process.
///
/// * `--shard I --num-shards N`: as given.
/// * `SLURM_ARRAY_TASK_ID` set: with `--num-shards N`, the array index *is* the shard (`--array=0-3` for 4
///   shards; `--array=2` re-runs shard 2 alone); without it, the shard is `(ID − MIN) / STEP` of
///   `SLURM_ARRAY_TASK_COUNT`.
/// * `JOB_COMPLETION_INDEX` set (a Kubernetes Indexed Job): the index, of `--num-shards N` (the Job's
///   `completions`), which must be given.
/// * Nothing: shard 0 of 1.
pub fn choose(shard: Option<usize>, num_shards: Option<usize>, env: &dyn Env) -> Result<Shard> {
    let chosen = match (shard, num_shards) {
        (Some(index), Some(count)) => Shard {
            index,
            count,
            from: "--shard",
        },
        (Some(_), None) => bail!("--shard needs --num-shards"),
        (None, num_shards) => {
            if let Some(id) = number(env, "SLURM_ARRAY_TASK_ID")? {
                match num_shards {
                    Some(count) => Shard {
                        index: id,
                        count,
                        from: "SLURM_ARRAY_TASK_ID",
                    },
                    None => {
                        let Some(count) = number(env, "SLURM_ARRAY_TASK_COUNT")? else {
                            bail!(
                                "SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not: give --num-shards"
                            );
                        };
                        let min = number(env, "SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
                        let step = number(env, "SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
                        if id < min || (id - min) % step != 0 {
                            bail!(
                                "SLURM_ARRAY_TASK_ID={id} is not MIN={min} plus a multiple of STEP={step}: \
                                 give --num-shards N and array indices 0..N-1"
                            );
                        }
                        Shard {
                            index: (id - min) / step,
                            count,
                            from: "SLURM_ARRAY_TASK_ID",
                        }
                    }
                }
            } else if let Some(index) = number(env, "JOB_COMPLETION_INDEX")? {
                let Some(count) = num_shards else {
                    bail!(
                        "JOB_COMPLETION_INDEX={index} (a Kubernetes Indexed Job) needs --num-shards, the Job's \
                         completions"
                    );
                };
                Shard {
                    index,
                    count,
                    from: "JOB_COMPLETION_INDEX",
                }
            } else {
                Shard {
                    index: 0,
                    count: num_shards.unwrap_or(1),
                    from: "default",
                }
            }
        }
    };
    if chosen.count == 0 {
        bail!("--num-shards must be at least 1");
    }
    if chosen.index >= chosen.count {
        bail!(
            "shard {} (from {}) is out of range for {} shard(s): shards are numbered 0..{}",
            chosen.index,
            chosen.from,
            chosen.count,
            chosen.count - 1
        );
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Vars(HashMap<&'static str, &'static str>);

    impl Env for Vars {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|s| s.to_string())
        }
    }

    fn env(pairs: &[(&'static str, &'static str)]) -> Vars {
        Vars(pairs.iter().copied().collect())
    }

    #[test]
    fn slurm_and_kubernetes_indices_become_shards() {
        let s = choose(
            None,
            None,
            &env(&[
                ("SLURM_ARRAY_TASK_ID", "7"),
                ("SLURM_ARRAY_TASK_MIN", "5"),
                ("SLURM_ARRAY_TASK_COUNT", "4"),
            ]),
        )
        .unwrap();
        assert_eq!((s.index, s.count), (2, 4));
        let s = choose(
            None,
            None,
            &env(&[
                ("SLURM_ARRAY_TASK_ID", "4"),
                ("SLURM_ARRAY_TASK_MIN", "0"),
                ("SLURM_ARRAY_TASK_STEP", "2"),
                ("SLURM_ARRAY_TASK_COUNT", "4"),
            ]),
        )
        .unwrap();
        assert_eq!((s.index, s.count), (2, 4));
        // A resubmitted single task: the array index is the shard when --num-shards is given.
        let one = env(&[
            ("SLURM_ARRAY_TASK_ID", "2"),
            ("SLURM_ARRAY_TASK_MIN", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "1"),
        ]);
        assert_eq!(choose(None, Some(4), &one).unwrap().index, 2);
        assert_eq!(choose(None, None, &one).unwrap().count, 1);
        let k8s = env(&[("JOB_COMPLETION_INDEX", "3")]);
        assert_eq!(choose(None, Some(5), &k8s).unwrap().index, 3);
        let e = choose(None, None, &k8s).unwrap_err().to_string();
        assert!(e.contains("needs --num-shards"), "{e}");
        let e = choose(None, Some(3), &k8s).unwrap_err().to_string();
        assert!(e.contains("out of range"), "{e}");
        let e = choose(None, None, &env(&[("SLURM_ARRAY_TASK_ID", "x")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a whole number"), "{e}");
        // The flags win over the environment.
        assert_eq!(choose(Some(1), Some(2), &one).unwrap().index, 1);
        assert_eq!(choose(None, None, &env(&[])).unwrap().count, 1);
    }

    #[test]
    fn every_id_lands_in_exactly_one_shard_for_any_count() {
        let ids: Vec<String> = (0..500).map(|i| format!("clip-{i}")).collect();
        for count in [1, 2, 3, 4, 7, 16] {
            let mut sizes = vec![0usize; count];
            for id in &ids {
                let owners = (0..count)
                    .filter(|&index| {
                        Shard {
                            index,
                            count,
                            from: "",
                        }
                        .holds(id)
                    })
                    .count();
                assert_eq!(owners, 1);
                sizes[shard_of(id, count)] += 1;
            }
            // Balanced within a loose bound (a hash, not a round robin).
            let expect = ids.len() / count;
            assert!(sizes.iter().all(|&s| s * 2 > expect), "{sizes:?}");
        }
        // Stable and reproducible outside: the values of python3's
        // `int.from_bytes(hashlib.sha256(id.encode()).digest()[:8], "big") % n` for n = 4 and 7.
        for (id, four, seven) in [
            ("clip-0", 0, 6),
            ("clip-1", 1, 5),
            ("a", 2, 4),
            ("ü-7", 0, 1),
        ] {
            assert_eq!((shard_of(id, 4), shard_of(id, 7)), (four, seven), "{id}");
        }
    }
}
