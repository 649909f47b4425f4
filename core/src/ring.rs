//! A fixed-capacity FIFO that overwrites its oldest element: the rolling bar window.

/// Ring of at most `N` elements; pushing onto a full ring drops the oldest.
///
/// Logical index 0 is the oldest element kept, `len() − 1` the newest.
#[derive(Debug, Clone)]
pub struct Ring<T: Copy, const N: usize> {
    buf: [T; N],
    /// Physical index of the oldest element.
    start: usize,
    len: usize,
}

impl<T: Copy, const N: usize> Ring<T, N> {
    /// An empty ring; `fill` only initialises the storage and is never observed.
    pub const fn new(fill: T) -> Self {
        Ring {
            buf: [fill; N],
            start: 0,
            len: 0,
        }
    }

    /// Capacity `N`.
    pub const fn capacity(&self) -> usize {
        N
    }

    /// Number of elements held.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether the ring holds nothing.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `value` as the newest element, dropping the oldest if full.
    pub fn push(&mut self, value: T) {
        if N == 0 {
            return;
        }
        if self.len < N {
            let mut i = self.start + self.len;
            if i >= N {
                i -= N;
            }
            self.buf[i] = value;
            self.len += 1;
        } else {
            self.buf[self.start] = value;
            self.start += 1;
            if self.start == N {
                self.start = 0;
            }
        }
    }

    /// Removes everything.
    pub fn clear(&mut self) {
        self.start = 0;
        self.len = 0;
    }

    /// The element at logical index `i` (0 = oldest), if held.
    pub fn get(&self, i: usize) -> Option<&T> {
        if i >= self.len {
            return None;
        }
        let mut p = self.start + i;
        if p >= N {
            p -= N;
        }
        self.buf.get(p)
    }

    /// The newest element.
    pub fn newest(&self) -> Option<&T> {
        match self.len {
            0 => None,
            n => self.get(n - 1),
        }
    }

    /// The newest element, mutably.
    pub fn newest_mut(&mut self) -> Option<&mut T> {
        if self.len == 0 {
            return None;
        }
        let mut p = self.start + self.len - 1;
        if p >= N {
            p -= N;
        }
        self.buf.get_mut(p)
    }

    /// The elements in logical order as two slices (`first` then `second`).
    pub fn as_slices(&self) -> (&[T], &[T]) {
        let end = self.start + self.len;
        if end <= N {
            (&self.buf[self.start..end], &[])
        } else {
            (&self.buf[self.start..], &self.buf[..end - N])
        }
    }

    /// The newest `len` elements (or all, if fewer are held) as a [`Window`].
    pub fn last(&self, len: usize) -> Window<'_, T> {
        let (a, b) = self.as_slices();
        let len = len.min(self.len);
        let skip = self.len - len;
        if skip >= a.len() {
            Window {
                first: &b[skip - a.len()..],
                second: &[],
            }
        } else {
            Window {
                first: &a[skip..],
                second: b,
            }
        }
    }
}

/// A read-only run of consecutive ring elements, possibly split in two slices by the wrap.
#[derive(Debug, Clone, Copy)]
pub struct Window<'a, T> {
    first: &'a [T],
    second: &'a [T],
}

impl<'a, T> Window<'a, T> {
    /// A window over one contiguous slice.
    pub const fn from_slice(slice: &'a [T]) -> Self {
        Window {
            first: slice,
            second: &[],
        }
    }

    /// Number of elements.
    pub const fn len(&self) -> usize {
        self.first.len() + self.second.len()
    }

    /// Whether it is empty.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` (0 = oldest). Panics if `i >= len()`, like slice indexing; callers index
    /// only below `len()`, which the model's validation guarantees for every period.
    #[inline]
    pub fn at(&self, i: usize) -> &'a T {
        if i < self.first.len() {
            &self.first[i]
        } else {
            &self.second[i - self.first.len()]
        }
    }

    /// The two underlying slices, oldest first.
    pub const fn as_slices(&self) -> (&'a [T], &'a [T]) {
        (self.first, self.second)
    }

    /// The sub-window `[from, len())`.
    pub fn skip(&self, from: usize) -> Window<'a, T> {
        if from >= self.first.len() {
            let from2 = (from - self.first.len()).min(self.second.len());
            Window {
                first: &self.second[from2..],
                second: &[],
            }
        } else {
            Window {
                first: &self.first[from..],
                second: self.second,
            }
        }
    }

    /// The sub-window `[from, from + len)`, clamped to the window.
    pub fn range(&self, from: usize, len: usize) -> Window<'a, T> {
        let w = self.skip(from);
        let len = len.min(w.len());
        if len <= w.first.len() {
            Window {
                first: &w.first[..len],
                second: &[],
            }
        } else {
            Window {
                first: w.first,
                second: &w.second[..len - w.first.len()],
            }
        }
    }

    /// Iterates oldest to newest.
    pub fn iter(&self) -> impl Iterator<Item = &'a T> + 'a {
        self.first.iter().chain(self.second.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overwrites_oldest() {
        let mut r: Ring<u32, 3> = Ring::new(0);
        assert!(r.is_empty());
        for v in 1..=5 {
            r.push(v);
        }
        assert_eq!(r.len(), 3);
        assert_eq!(r.get(0), Some(&3));
        assert_eq!(r.newest(), Some(&5));
        assert_eq!(r.get(3), None);
        let (a, b) = r.as_slices();
        let all: heapless_free::Vec3 = a.iter().chain(b).copied().collect();
        assert_eq!(all.0, [3, 4, 5]);
    }

    #[test]
    fn windows_and_subranges() {
        let mut r: Ring<u32, 5> = Ring::new(0);
        for v in 0..8 {
            r.push(v);
        }
        // holds 3 4 5 6 7, wrapped
        let w = r.last(4);
        assert_eq!(w.len(), 4);
        let got: heapless_free::Vec3 = w.iter().copied().take(3).collect();
        assert_eq!(got.0, [4, 5, 6]);
        assert_eq!(*w.at(3), 7);
        for from in 0..4 {
            for len in 0..5 {
                let sub = w.range(from, len);
                let expect = len.min(4 - from);
                assert_eq!(sub.len(), expect);
                for i in 0..expect {
                    assert_eq!(*sub.at(i), 4 + (from + i) as u32);
                }
            }
        }
        assert_eq!(r.last(9).len(), 5);
        r.clear();
        assert!(r.last(2).is_empty());
    }

    /// A tiny fixed collector so the tests need no alloc.
    mod heapless_free {
        pub struct Vec3(pub [u32; 3]);
        impl FromIterator<u32> for Vec3 {
            fn from_iter<I: IntoIterator<Item = u32>>(iter: I) -> Self {
                let mut out = [0; 3];
                for (slot, v) in out.iter_mut().zip(iter) {
                    *slot = v;
                }
                Vec3(out)
            }
        }
    }
}
