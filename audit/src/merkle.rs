//! RFC 6962 / RFC 9162 Merkle tree over the log's lines.
//!
//! The hash chain alone shows that no entry was changed in place, but not that
//! the tail is still there: deleting the last entries, or restoring an older
//! copy, leaves a perfectly valid chain. A Merkle tree over the entries lets a
//! signed checkpoint commit to (size, root), and gives compact proofs that an
//! entry is in the log (inclusion) and that a later log extends an earlier one
//! (consistency), both checkable offline.
//!
//! Leaf hash: SHA-256(0x00 ‖ line bytes without the newline). Node hash:
//! SHA-256(0x01 ‖ left ‖ right). Proof generation follows RFC 6962 §2.1.1 and
//! §2.1.2; verification follows RFC 9162 §2.1.3.2 and §2.1.4.2.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::hash::Sha256Hash;

/// Domain-separation prefix of leaf hashes.
pub const LEAF_PREFIX: u8 = 0x00;
/// Domain-separation prefix of interior node hashes.
pub const NODE_PREFIX: u8 = 0x01;

/// Why a proof could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MerkleError {
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("old tree size {old_size} is larger than new tree size {new_size}")]
    OldSizeLargerThanNew { old_size: u64, new_size: u64 },
}

/// Why a proof does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
#[non_exhaustive]
pub enum MerkleProofError {
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("old tree size {old_size} is larger than new tree size {new_size}")]
    OldSizeLargerThanNew { old_size: u64, new_size: u64 },
    #[error("proof has {length} hashes, the wrong number for these tree sizes")]
    WrongProofLength { length: usize },
    #[error("proof leads to root {computed}, not the expected {expected}")]
    RootMismatch { computed: Sha256Hash, expected: Sha256Hash },
    #[error("proof leads to old root {computed}, not the expected {expected}")]
    OldRootMismatch { computed: Sha256Hash, expected: Sha256Hash },
}

/// SHA-256(0x00 ‖ data).
pub fn leaf_hash(data: &[u8]) -> Sha256Hash {
    let mut hasher = Sha256::new();
    hasher.update([LEAF_PREFIX]);
    hasher.update(data);
    Sha256Hash(hasher.finalize().into())
}

/// SHA-256(0x01 ‖ left ‖ right).
pub fn node_hash(left: &Sha256Hash, right: &Sha256Hash) -> Sha256Hash {
    let mut hasher = Sha256::new();
    hasher.update([NODE_PREFIX]);
    hasher.update(left.as_bytes());
    hasher.update(right.as_bytes());
    Sha256Hash(hasher.finalize().into())
}

/// The root of the empty tree: SHA-256 of no bytes.
pub fn empty_root() -> Sha256Hash {
    Sha256Hash(Sha256::digest([]).into())
}

/// The root (MTH) of the tree whose leaf hashes are `leaves`.
pub fn root(leaves: &[Sha256Hash]) -> Sha256Hash {
    match leaves {
        [] => empty_root(),
        [only] => *only,
        _ => {
            let k = split_point(leaves.len() as u64) as usize;
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The largest power of two below `n` (for `n >= 2`).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (u64::BITS - 1 - (n - 1).leading_zeros())
}

/// Where proofs get the roots of subtrees from: the leaves in memory, or the
/// stored hashes beside the log (`crate::tree`), which make a proof
/// O(log n) reads. One proof algorithm serves both.
pub trait SubtreeRoots {
    type Error;
    /// The root of leaves `lo..hi`, for the ranges RFC 6962's recursion
    /// asks for: `lo` is a multiple of a power of two at least `hi - lo`.
    fn range_root(&self, lo: u64, hi: u64) -> Result<Sha256Hash, Self::Error>;
}

impl SubtreeRoots for [Sha256Hash] {
    type Error = std::convert::Infallible;
    fn range_root(&self, lo: u64, hi: u64) -> Result<Sha256Hash, Self::Error> {
        // Callers stay within the tree, whose leaves are all in memory.
        Ok(root(&self[lo as usize..hi as usize]))
    }
}

/// Either a proof's inputs were wrong or its source could not be read.
#[derive(Debug)]
pub enum PathError<E> {
    Merkle(MerkleError),
    Source(E),
}

fn infallible<T>(result: Result<T, PathError<std::convert::Infallible>>) -> Result<T, MerkleError> {
    result.map_err(|e| match e {
        PathError::Merkle(e) => e,
        PathError::Source(never) => match never {},
    })
}

/// The inclusion proof (audit path) of leaf `index` in the tree of `leaves`,
/// nearest sibling first.
pub fn inclusion_path(leaves: &[Sha256Hash], index: u64) -> Result<Vec<Sha256Hash>, MerkleError> {
    infallible(inclusion_path_in(leaves, leaves.len() as u64, index))
}

/// The inclusion proof of leaf `index` in the first `size` leaves of `source`.
pub fn inclusion_path_in<S: SubtreeRoots + ?Sized>(
    source: &S,
    size: u64,
    index: u64,
) -> Result<Vec<Sha256Hash>, PathError<S::Error>> {
    if index >= size {
        return Err(PathError::Merkle(MerkleError::IndexOutOfRange { index, size }));
    }
    let mut out = Vec::new();
    path_into(source, index, 0, size, &mut out).map_err(PathError::Source)?;
    Ok(out)
}

/// RFC 6962 §2.1.1's PATH(m, D[lo..lo+n]).
fn path_into<S: SubtreeRoots + ?Sized>(
    source: &S,
    m: u64,
    lo: u64,
    n: u64,
    out: &mut Vec<Sha256Hash>,
) -> Result<(), S::Error> {
    if n <= 1 {
        return Ok(());
    }
    let k = split_point(n);
    if m < k {
        path_into(source, m, lo, k, out)?;
        out.push(source.range_root(lo + k, lo + n)?);
    } else {
        path_into(source, m - k, lo + k, n - k, out)?;
        out.push(source.range_root(lo, lo + k)?);
    }
    Ok(())
}

/// The consistency proof from the tree of the first `old_size` leaves to the
/// tree of all `leaves`. Empty when `old_size` is 0 or the whole tree.
pub fn consistency_path(leaves: &[Sha256Hash], old_size: u64) -> Result<Vec<Sha256Hash>, MerkleError> {
    infallible(consistency_path_in(leaves, leaves.len() as u64, old_size))
}

/// The consistency proof from the first `old_size` leaves of `source` to its
/// first `new_size`.
pub fn consistency_path_in<S: SubtreeRoots + ?Sized>(
    source: &S,
    new_size: u64,
    old_size: u64,
) -> Result<Vec<Sha256Hash>, PathError<S::Error>> {
    if old_size > new_size {
        return Err(PathError::Merkle(MerkleError::OldSizeLargerThanNew { old_size, new_size }));
    }
    let mut out = Vec::new();
    if old_size > 0 && old_size < new_size {
        subproof_into(source, old_size, 0, new_size, true, &mut out).map_err(PathError::Source)?;
    }
    Ok(out)
}

/// RFC 6962 §2.1.2's SUBPROOF(m, D[lo..lo+n], b).
fn subproof_into<S: SubtreeRoots + ?Sized>(
    source: &S,
    m: u64,
    lo: u64,
    n: u64,
    whole_old_tree: bool,
    out: &mut Vec<Sha256Hash>,
) -> Result<(), S::Error> {
    if m == n {
        if !whole_old_tree {
            out.push(source.range_root(lo, lo + n)?);
        }
        return Ok(());
    }
    let k = split_point(n);
    if m <= k {
        subproof_into(source, m, lo, k, whole_old_tree, out)?;
        out.push(source.range_root(lo + k, lo + n)?);
    } else {
        subproof_into(source, m - k, lo + k, n - k, false, out)?;
        out.push(source.range_root(lo, lo + k)?);
    }
    Ok(())
}

/// Recomputes the root that an inclusion proof leads to (RFC 9162 §2.1.3.2).
pub fn root_from_inclusion_proof(
    index: u64,
    size: u64,
    leaf: &Sha256Hash,
    path: &[Sha256Hash],
) -> Result<Sha256Hash, MerkleProofError> {
    if index >= size {
        return Err(MerkleProofError::IndexOutOfRange { index, size });
    }
    let wrong_length = MerkleProofError::WrongProofLength { length: path.len() };
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if s_n == 0 {
            return Err(wrong_length);
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(wrong_length);
    }
    Ok(r)
}

/// Checks that `leaf` is at `index` in the tree of `size` leaves with `root`.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Sha256Hash,
    path: &[Sha256Hash],
    root: &Sha256Hash,
) -> Result<(), MerkleProofError> {
    let computed = root_from_inclusion_proof(index, size, leaf, path)?;
    if computed != *root {
        return Err(MerkleProofError::RootMismatch { computed, expected: *root });
    }
    Ok(())
}

/// Checks that the tree of `new_size` leaves with `new_root` extends the
/// tree of `old_size` leaves with `old_root` (RFC 9162 §2.1.4.2). Size 0 is
/// consistent with anything and equal sizes need equal roots, both with an
/// empty proof.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    path: &[Sha256Hash],
    old_root: &Sha256Hash,
    new_root: &Sha256Hash,
) -> Result<(), MerkleProofError> {
    let wrong_length = MerkleProofError::WrongProofLength { length: path.len() };
    if old_size > new_size {
        return Err(MerkleProofError::OldSizeLargerThanNew { old_size, new_size });
    }
    if old_size == new_size || old_size == 0 {
        if !path.is_empty() {
            return Err(wrong_length);
        }
        if old_size == new_size && old_root != new_root {
            return Err(MerkleProofError::RootMismatch { computed: *old_root, expected: *new_root });
        }
        return Ok(());
    }
    let mut items = path.iter();
    // When the old tree is a complete subtree its root is the proof's
    // implicit first element.
    let first = if old_size.is_power_of_two() { *old_root } else { *items.next().ok_or(wrong_length.clone())? };
    let (mut f_n, mut s_n) = (old_size - 1, new_size - 1);
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let (mut fr, mut sr) = (first, first);
    for c in items {
        if s_n == 0 {
            return Err(wrong_length);
        }
        if f_n & 1 == 1 || f_n == s_n {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(wrong_length);
    }
    if fr != *old_root {
        return Err(MerkleProofError::OldRootMismatch { computed: fr, expected: *old_root });
    }
    if sr != *new_root {
        return Err(MerkleProofError::RootMismatch { computed: sr, expected: *new_root });
    }
    Ok(())
}

/// A Merkle tree grown one leaf at a time in O(log n) memory: the roots of
/// the perfect subtrees that make up the tree, largest (leftmost) first. Used
/// to stream a million-entry log without holding its leaves.
#[derive(Debug, Clone, Default)]
pub struct CompactTree {
    size: u64,
    subtrees: Vec<Sha256Hash>,
}

impl CompactTree {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Adds a leaf hash on the right.
    pub fn push(&mut self, leaf: Sha256Hash) {
        self.subtrees.push(leaf);
        // Each trailing one bit of the old size is a perfect subtree of the
        // same height as the new one: merge them pairwise.
        let mut size = self.size;
        while size & 1 == 1 {
            if let (Some(right), Some(left)) = (self.subtrees.pop(), self.subtrees.pop()) {
                self.subtrees.push(node_hash(&left, &right));
            }
            size >>= 1;
        }
        self.size += 1;
    }

    /// The root of the tree so far.
    pub fn root(&self) -> Sha256Hash {
        let mut subtrees = self.subtrees.iter().rev();
        let Some(last) = subtrees.next() else {
            return empty_root();
        };
        subtrees.fold(*last, |acc, left| node_hash(left, &acc))
    }
}

#[cfg(test)]
mod tests {
    //! Known-answer vectors from transparency-dev/merkle:
    //! - leaf inputs, every root for sizes 0..=8 and the empty-tree root:
    //!   `testonly/constants.go` (commit 582a6ad190b6848f1d26f8bf08ddef29955d9db1);
    //! - inclusion and consistency proofs and their corruption probes:
    //!   `proof/verify_test.go` (commit 02194e9afb6c1d95b5381350007963aa70fff472).
    //!
    //! The same eight leaves and roots are the reference data of RFC 6962's
    //! original test suite (certificate-transparency `merkle_tree_test.cc`).

    use super::*;

    fn h(text: &str) -> Sha256Hash {
        Sha256Hash::from_hex(text).unwrap()
    }

    const LEAF_INPUTS: [&str; 8] =
        ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"];

    /// Roots of the trees of the first 1..=8 leaves.
    const ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];
    const EMPTY_ROOT: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const SOME_HASH: &str = "abacaba000000000000000000000000000000000000000000060061e00123456";

    fn leaves() -> Vec<Sha256Hash> {
        LEAF_INPUTS.iter().map(|x| leaf_hash(&hex::decode(x).unwrap())).collect()
    }

    /// (leaf index, tree size, proof): `inclusionProofs` of verify_test.go,
    /// whose leaf numbers are 1-based.
    fn inclusion_vectors() -> Vec<(u64, u64, Vec<Sha256Hash>)> {
        vec![
            (0, 1, vec![]),
            (
                0,
                8,
                vec![
                    h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                    h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                    h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
                ],
            ),
            (
                5,
                8,
                vec![
                    h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
                    h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                    h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
                ],
            ),
            (2, 3, vec![h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
            (
                1,
                5,
                vec![
                    h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
                    h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                    h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
                ],
            ),
        ]
    }

    /// (old size, new size, proof): `consistencyProofs` of verify_test.go.
    fn consistency_vectors() -> Vec<(u64, u64, Vec<Sha256Hash>)> {
        vec![
            (1, 1, vec![]),
            (
                1,
                8,
                vec![
                    h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                    h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                    h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
                ],
            ),
            (
                6,
                8,
                vec![
                    h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                    h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                    h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
                ],
            ),
            (
                2,
                5,
                vec![
                    h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                    h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
                ],
            ),
            (
                6,
                7,
                vec![
                    h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                    h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
                    h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
                ],
            ),
        ]
    }

    fn root_of(size: u64) -> Sha256Hash {
        if size == 0 { h(EMPTY_ROOT) } else { h(ROOTS[size as usize - 1]) }
    }

    #[test]
    fn roots_match_reference_data() {
        assert_eq!(empty_root(), h(EMPTY_ROOT));
        assert_eq!(root(&[]), h(EMPTY_ROOT));
        let leaves = leaves();
        let mut compact = CompactTree::new();
        assert_eq!(compact.root(), h(EMPTY_ROOT));
        for size in 1..=8 {
            assert_eq!(root(&leaves[..size]), root_of(size as u64), "size {size}");
            compact.push(leaves[size - 1]);
            assert_eq!(compact.root(), root_of(size as u64), "compact size {size}");
        }
    }

    #[test]
    fn generated_proofs_match_reference_vectors() {
        let leaves = leaves();
        for (index, size, proof) in inclusion_vectors() {
            assert_eq!(inclusion_path(&leaves[..size as usize], index).unwrap(), proof, "inclusion {index}/{size}");
        }
        for (old, new, proof) in consistency_vectors() {
            assert_eq!(consistency_path(&leaves[..new as usize], old).unwrap(), proof, "consistency {old}->{new}");
        }
        assert!(inclusion_path(&leaves, 8).is_err());
        assert!(consistency_path(&leaves[..3], 4).is_err());
    }

    /// Every inclusion proof and every consistency proof of every pair of
    /// sizes up to 8 (and a few larger trees) verifies.
    #[test]
    fn all_generated_proofs_verify() {
        let mut leaves = leaves();
        leaves.extend((8u8..70).map(|i| leaf_hash(&[i])));
        for size in 1..=leaves.len() {
            let tree = &leaves[..size];
            let tree_root = root(tree);
            for index in 0..size as u64 {
                let path = inclusion_path(tree, index).unwrap();
                verify_inclusion(index, size as u64, &tree[index as usize], &path, &tree_root).unwrap();
            }
            for old in 0..=size {
                let path = consistency_path(tree, old as u64).unwrap();
                verify_consistency(old as u64, size as u64, &path, &root(&leaves[..old]), &tree_root)
                    .unwrap_or_else(|e| panic!("{old}->{size}: {e:#}"));
            }
        }
    }

    /// The corruption probes of `corruptInclusionProof` in verify_test.go.
    /// Probes there that pass hashes of the wrong length cannot be expressed
    /// with a 32-byte type; other wrong values stand in for them.
    #[test]
    fn corrupted_inclusion_proofs_are_refused() {
        let leaves = leaves();
        for (index, size, proof) in inclusion_vectors() {
            let leaf = leaves[index as usize];
            let root = root_of(size);
            verify_inclusion(index, size, &leaf, &proof, &root).unwrap();
            let mut probes: Vec<(u64, u64, Sha256Hash, Sha256Hash, Vec<Sha256Hash>, String)> = vec![
                (index.wrapping_sub(1), size, leaf, root, proof.clone(), "index - 1".into()),
                (index + 1, size, leaf, root, proof.clone(), "index + 1".into()),
                (index ^ 2, size, leaf, root, proof.clone(), "index ^ 2".into()),
                (index, size * 2, leaf, root, proof.clone(), "size * 2".into()),
                (index, size / 2, leaf, root, proof.clone(), "size / 2".into()),
                (index, size, leaf_hash(b"WrongLeaf"), root, proof.clone(), "wrong leaf".into()),
                (index, size, leaf, h(EMPTY_ROOT), proof.clone(), "empty root".into()),
                (index, size, leaf, h(SOME_HASH), proof.clone(), "random root".into()),
                (index, size, leaf, root, [proof.clone(), vec![Sha256Hash::ZERO]].concat(), "trailing garbage".into()),
                (index, size, leaf, root, [proof.clone(), vec![root]].concat(), "trailing root".into()),
                (index, size, leaf, root, [vec![Sha256Hash::ZERO], proof.clone()].concat(), "preceding garbage".into()),
                (index, size, leaf, root, [vec![root], proof.clone()].concat(), "preceding root".into()),
            ];
            for i in 0..proof.len() {
                let mut wrong = proof.clone();
                wrong[i].0[0] ^= 8;
                probes.push((index, size, leaf, root, wrong, format!("modified proof[{i}] bit 3")));
            }
            if !proof.is_empty() {
                probes.push((index, size, leaf, root, proof[..proof.len() - 1].to_vec(), "removed component".into()));
            }
            if proof.len() > 1 {
                let wrong = [vec![proof[0], h(SOME_HASH)], proof[1..].to_vec()].concat();
                probes.push((index, size, leaf, root, wrong, "inserted component".into()));
            }
            for (i, s, l, r, p, desc) in probes {
                assert!(verify_inclusion(i, s, &l, &p, &r).is_err(), "{index}/{size}: accepted {desc}");
            }
        }
        // TestVerifyInclusion's probes on impossible sizes.
        for (index, size) in [(0, 0), (0, 1), (1, 0), (2, 1)] {
            assert!(verify_inclusion(index, size, &h(SOME_HASH), &[], &h(EMPTY_ROOT)).is_err());
        }
        // TestVerifyInclusionSingleEntry: a one-leaf tree's root is its leaf.
        let data_leaf = leaf_hash(b"data");
        verify_inclusion(0, 1, &data_leaf, &[], &data_leaf).unwrap();
        assert!(verify_inclusion(0, 1, &data_leaf, &[], &Sha256Hash::ZERO).is_err());
    }

    /// The probes of `corruptConsistencyProof` and the table of
    /// `TestVerifyConsistency` in verify_test.go.
    #[test]
    fn corrupted_consistency_proofs_are_refused() {
        for (old, new, proof) in consistency_vectors() {
            let (r1, r2) = (root_of(old), root_of(new));
            verify_consistency(old, new, &proof, &r1, &r2).unwrap();
            if proof.is_empty() {
                continue;
            }
            let wrong_root = leaf_hash(b"WrongRoot");
            let mut probes: Vec<(u64, u64, Sha256Hash, Sha256Hash, Vec<Sha256Hash>, String)> = vec![
                (old - 1, new, r1, r2, proof.clone(), "size1 - 1".into()),
                (old + 1, new, r1, r2, proof.clone(), "size1 + 1".into()),
                (old ^ 2, new, r1, r2, proof.clone(), "size1 ^ 2".into()),
                (old, new * 2, r1, r2, proof.clone(), "size2 * 2".into()),
                (old, new / 2, r1, r2, proof.clone(), "size2 / 2".into()),
                (old, new, wrong_root, r2, proof.clone(), "wrong root1".into()),
                (old, new, r1, wrong_root, proof.clone(), "wrong root2".into()),
                (old, new, r2, r1, proof.clone(), "swapped roots".into()),
                (old, new, r1, r2, vec![], "empty proof".into()),
                (old, new, r1, r2, [proof.clone(), vec![Sha256Hash::ZERO]].concat(), "trailing garbage".into()),
                (old, new, r1, r2, [proof.clone(), vec![r1]].concat(), "trailing root1".into()),
                (old, new, r1, r2, [proof.clone(), vec![r2]].concat(), "trailing root2".into()),
                (old, new, r1, r2, [vec![Sha256Hash::ZERO], proof.clone()].concat(), "preceding garbage".into()),
                (old, new, r1, r2, [vec![r1], proof.clone()].concat(), "preceding root1".into()),
                (old, new, r1, r2, [vec![r2], proof.clone()].concat(), "preceding root2".into()),
                (old, new, r1, r2, [vec![proof[0]], proof.clone()].concat(), "preceding proof[0]".into()),
                (old, new, r1, r2, proof[..proof.len() - 1].to_vec(), "truncated proof".into()),
            ];
            for i in 0..proof.len() {
                let mut wrong = proof.clone();
                wrong[i].0[0] ^= 16;
                probes.push((old, new, r1, r2, wrong, format!("modified proof[{i}] bit 4")));
            }
            for (s1, s2, a, b, p, desc) in probes {
                assert!(verify_consistency(s1, s2, &p, &a, &b).is_err(), "{old}->{new}: accepted {desc}");
            }
        }

        let (root1, root2) = (leaf_hash(b"don't care 1"), leaf_hash(b"don't care 2"));
        let empty = h(EMPTY_ROOT);
        let table: [(u64, u64, Sha256Hash, Sha256Hash, Vec<Sha256Hash>, bool); 13] = [
            (0, 0, root1, root2, vec![], false),
            (1, 1, root1, root2, vec![], false),
            (0, 0, root1, root1, vec![], true),
            (0, 1, root1, root2, vec![], true),
            (1, 1, root2, root2, vec![], true),
            (1, 0, root1, root2, vec![], false),
            (2, 1, root1, root2, vec![], false),
            (1, 2, root1, root2, vec![], false),
            (0, 0, empty, root2, vec![], false),
            (1, 1, empty, root2, vec![], false),
            (0, 0, empty, empty, vec![empty], false),
            (0, 1, empty, empty, vec![empty], false),
            (1, 1, empty, empty, vec![empty], false),
        ];
        for (i, (s1, s2, a, b, p, ok)) in table.into_iter().enumerate() {
            assert_eq!(verify_consistency(s1, s2, &p, &a, &b).is_ok(), ok, "table row {i}");
        }
    }
}
