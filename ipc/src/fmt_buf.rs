//! `core::fmt::Write` into a caller-supplied byte buffer (no allocation).

use core::fmt::{self, Write};

struct Cursor<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl Write for Cursor<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        let dst = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Writes `args` into `buf`; `Err(())` when it does not fit.
#[allow(clippy::result_unit_err)]
pub fn write<'b>(buf: &'b mut [u8], args: fmt::Arguments<'_>) -> Result<&'b str, ()> {
    let mut c = Cursor { buf, len: 0 };
    c.write_fmt(args).map_err(|_| ())?;
    let len = c.len;
    let buf = c.buf;
    // Only whole `&str`s were copied in, so the prefix is valid UTF-8.
    core::str::from_utf8(&buf[..len]).map_err(|_| ())
}
