//! The order PyTorch's CPU `torch.sort` and `torch.topk` give equal values, reproduced.
//!
//! Neither is stable: ATen sorts `(value, index)` pairs with libstdc++'s `std::sort`, and `topk_impl_loop`
//! (`aten/src/ATen/native/TopKImpl.h`) picks the top `k` with `std::partial_sort` when `k · 64 ≤ n`, else with
//! `std::nth_element` followed by `std::sort` of the first `k − 1`; all compare the values alone. Which of two
//! equal values comes first therefore depends on the steps of those algorithms, and transformers' decisions
//! depend on it: the top-p cut (`TopPLogitsWarper` sorts), and which beams survive in beam search (three
//! `topk` calls a step), where sums of log-probabilities tie exactly more often than one would think (seed
//! 628225812 of the parity sweep: two candidates at −14.923954 competing for the last running beam).
//!
//! The algorithms are written here step for step after libstdc++ (`bits/stl_algo.h`, `bits/stl_heap.h`),
//! on a vector of indices under a comparator on the values. They are ours to write because no crate
//! reproduces libstdc++'s order of equal elements (Rust's own sorts are different algorithms).

/// `comp(a, b)`: element `a` goes before element `b` (indices into the values).
type Comp<'a> = &'a dyn Fn(usize, usize) -> bool;

/// libstdc++'s `_S_threshold`: partitions stop at 16 elements, insertion sort finishes.
const THRESHOLD: usize = 16;

/// `2 · ⌊log₂ n⌋` (`std::__lg(n) * 2`), the depth limit of introsort and introselect.
fn depth_limit(n: usize) -> usize {
    2 * (usize::BITS - 1 - n.leading_zeros()) as usize
}

/// The indices `torch.sort(values)` (ascending, not stable) returns on CPU, under ATen's comparator
/// `(!isnan(a) && isnan(b)) || a < b`.
pub fn sort_ascending(values: &[f32]) -> Vec<usize> {
    let less = |a: usize, b: usize| {
        let (x, y) = (values[a], values[b]);
        (!x.is_nan() && y.is_nan()) || x < y
    };
    let mut v: Vec<usize> = (0..values.len()).collect();
    let n = v.len();
    sort(&mut v, 0, n, &less);
    v
}

/// The indices `torch.topk(values, k)` (largest, sorted) returns on CPU, in its order: NaN counts as the
/// largest (ATen's comparator `(isnan(a) && !isnan(b)) || a > b`), and equal values come out as
/// `topk_impl_loop`'s algorithms leave them. `k` larger than the length is cut to it.
pub fn topk_largest(values: &[f32], k: usize) -> Vec<usize> {
    let n = values.len();
    let k = k.min(n);
    if k == 0 {
        return Vec::new();
    }
    let greater = |a: usize, b: usize| {
        let (x, y) = (values[a], values[b]);
        (x.is_nan() && !y.is_nan()) || x > y
    };
    let mut v: Vec<usize> = (0..n).collect();
    if k * 64 <= n {
        partial_sort(&mut v, k, &greater);
    } else {
        nth_element(&mut v, k - 1, &greater);
        sort(&mut v, 0, k - 1, &greater);
    }
    v.truncate(k);
    v
}

/// `std::sort(first, last, comp)`: introsort, then the final insertion sort.
fn sort(v: &mut [usize], first: usize, last: usize, comp: Comp) {
    let n = last - first;
    if n < 2 {
        return;
    }
    introsort_loop(v, first, last, depth_limit(n), comp);
    // `__final_insertion_sort`.
    if n > THRESHOLD {
        insertion_sort(v, first, first + THRESHOLD, comp);
        for i in first + THRESHOLD..last {
            unguarded_linear_insert(v, i, comp);
        }
    } else {
        insertion_sort(v, first, last, comp);
    }
}

fn introsort_loop(v: &mut [usize], first: usize, mut last: usize, mut depth: usize, comp: Comp) {
    while last - first > THRESHOLD {
        if depth == 0 {
            // `std::__partial_sort(first, last, last)`.
            heap_select(v, first, last, last, comp);
            sort_heap(v, first, last, comp);
            return;
        }
        depth -= 1;
        let cut = unguarded_partition_pivot(v, first, last, comp);
        introsort_loop(v, cut, last, depth, comp);
        last = cut;
    }
}

/// `std::partial_sort(v.begin(), v.begin() + middle, v.end(), comp)`.
fn partial_sort(v: &mut [usize], middle: usize, comp: Comp) {
    let last = v.len();
    heap_select(v, 0, middle, last, comp);
    sort_heap(v, 0, middle, comp);
}

/// `std::nth_element(v.begin(), v.begin() + nth, v.end(), comp)`: introselect.
fn nth_element(v: &mut [usize], nth: usize, comp: Comp) {
    let (mut first, mut last) = (0, v.len());
    if first == last || nth == last {
        return;
    }
    let mut depth = depth_limit(last - first);
    while last - first > 3 {
        if depth == 0 {
            heap_select(v, first, nth + 1, last, comp);
            v.swap(first, nth);
            return;
        }
        depth -= 1;
        let cut = unguarded_partition_pivot(v, first, last, comp);
        if cut <= nth {
            first = cut;
        } else {
            last = cut;
        }
    }
    insertion_sort(v, first, last, comp);
}

fn unguarded_partition_pivot(v: &mut [usize], first: usize, last: usize, comp: Comp) -> usize {
    let mid = first + (last - first) / 2;
    move_median_to_first(v, first, first + 1, mid, last - 1, comp);
    unguarded_partition(v, first + 1, last, first, comp)
}

fn move_median_to_first(v: &mut [usize], result: usize, a: usize, b: usize, c: usize, comp: Comp) {
    let (x, y, z) = (v[a], v[b], v[c]);
    let pick = if comp(x, y) {
        if comp(y, z) {
            b
        } else if comp(x, z) {
            c
        } else {
            a
        }
    } else if comp(x, z) {
        a
    } else if comp(y, z) {
        c
    } else {
        b
    };
    v.swap(result, pick);
}

fn unguarded_partition(
    v: &mut [usize],
    mut first: usize,
    mut last: usize,
    pivot: usize,
    comp: Comp,
) -> usize {
    loop {
        while comp(v[first], v[pivot]) {
            first += 1;
        }
        last -= 1;
        while comp(v[pivot], v[last]) {
            last -= 1;
        }
        if first >= last {
            return first;
        }
        v.swap(first, last);
        first += 1;
    }
}

fn insertion_sort(v: &mut [usize], first: usize, last: usize, comp: Comp) {
    if first == last {
        return;
    }
    for i in first + 1..last {
        let val = v[i];
        if comp(val, v[first]) {
            v.copy_within(first..i, first + 1);
            v[first] = val;
        } else {
            unguarded_linear_insert(v, i, comp);
        }
    }
}

fn unguarded_linear_insert(v: &mut [usize], mut last: usize, comp: Comp) {
    let val = v[last];
    while comp(val, v[last - 1]) {
        v[last] = v[last - 1];
        last -= 1;
    }
    v[last] = val;
}

/// `std::__heap_select(first, middle, last, comp)`: a heap of `[first, middle)` that ends up holding the
/// `middle − first` elements that go first.
fn heap_select(v: &mut [usize], first: usize, middle: usize, last: usize, comp: Comp) {
    make_heap(v, first, middle, comp);
    for i in middle..last {
        if comp(v[i], v[first]) {
            pop_heap(v, first, middle, i, comp);
        }
    }
}

/// `std::__make_heap(first, last, comp)`.
fn make_heap(v: &mut [usize], first: usize, last: usize, comp: Comp) {
    let len = last - first;
    if len < 2 {
        return;
    }
    let mut parent = (len - 2) / 2;
    loop {
        let value = v[first + parent];
        adjust_heap(v, first, parent, len, value, comp);
        if parent == 0 {
            return;
        }
        parent -= 1;
    }
}

/// `std::__sort_heap(first, last, comp)`.
fn sort_heap(v: &mut [usize], first: usize, mut last: usize, comp: Comp) {
    while last - first > 1 {
        last -= 1;
        pop_heap(v, first, last, last, comp);
    }
}

/// `std::__pop_heap(first, last, result, comp)`: the top goes to `result`, `result`'s element into the heap.
fn pop_heap(v: &mut [usize], first: usize, last: usize, result: usize, comp: Comp) {
    let value = v[result];
    v[result] = v[first];
    adjust_heap(v, first, 0, last - first, value, comp);
}

/// `std::__adjust_heap(first, hole, len, value, comp)` with `__push_heap` at the end; positions relative to
/// `first`.
fn adjust_heap(
    v: &mut [usize],
    first: usize,
    mut hole: usize,
    len: usize,
    value: usize,
    comp: Comp,
) {
    let top = hole;
    let mut second = hole;
    while second < (len - 1) / 2 {
        second = 2 * (second + 1);
        if comp(v[first + second], v[first + second - 1]) {
            second -= 1;
        }
        v[first + hole] = v[first + second];
        hole = second;
    }
    if len & 1 == 0 && second == (len - 2) / 2 {
        second = 2 * (second + 1);
        v[first + hole] = v[first + second - 1];
        hole = second - 1;
    }
    let mut parent = hole.wrapping_sub(1) / 2;
    while hole > top && comp(v[first + parent], value) {
        v[first + hole] = v[first + parent];
        hole = parent;
        parent = hole.wrapping_sub(1) / 2;
    }
    v[first + hole] = value;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without ties every order is the one by value (the tie order is checked against torch in
    /// `tests/logits_processors.rs`).
    #[test]
    fn distinct_values_sort_and_select_by_value() {
        for n in [1usize, 2, 3, 5, 16, 17, 40, 300, 1000] {
            let values: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1009) as f32).collect();
            let mut want: Vec<usize> = (0..n).collect();
            want.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
            assert_eq!(sort_ascending(&values), want, "sort n={n}");
            want.reverse();
            for k in [1usize, 2, 3, 6, n / 2, n] {
                assert_eq!(
                    topk_largest(&values, k),
                    want[..k.min(n)],
                    "topk n={n} k={k}"
                );
            }
        }
    }

    #[test]
    fn nan_is_largest_in_topk_and_last_in_sort() {
        let values = [1.0, f32::NAN, 3.0, 2.0];
        assert_eq!(topk_largest(&values, 2), vec![1, 2]);
        assert_eq!(sort_ascending(&values), vec![0, 3, 2, 1]);
        assert!(topk_largest(&values, 0).is_empty());
        assert_eq!(topk_largest(&values, 9).len(), 4);
    }
}
