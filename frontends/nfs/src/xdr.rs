//! XDR (RFC 4506) for the types NFS uses: the `Xdr` trait (encode into a `Vec<u8>`, decode with
//! nom's streaming parsers, so a truncated message is `Incomplete`, never a panic), its
//! primitives, and macros that derive it for structs (fields in order) and enums (u32 values).
//!
//! Decoding never allocates more than the input holds: lengths are checked against the bytes
//! present before anything is copied, and arrays grow one decoded element at a time.

use nom::bytes::streaming::take;
use nom::error::{Error, ErrorKind};
use nom::number::streaming::{be_u32, be_u64};
use nom::IResult;

pub type Res<'a, T> = IResult<&'a [u8], T>;

pub trait Xdr: Sized {
    fn put(&self, out: &mut Vec<u8>);
    fn get(i: &[u8]) -> Res<'_, Self>;

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.put(&mut out);
        out
    }
}

/// A decode failure that is not truncation (a bad discriminant, an over-long opaque).
pub fn invalid<T>(i: &[u8]) -> Res<'_, T> {
    Err(nom::Err::Error(Error::new(i, ErrorKind::Verify)))
}

impl Xdr for u32 {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
    fn get(i: &[u8]) -> Res<'_, Self> {
        be_u32(i)
    }
}

impl Xdr for u64 {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
    fn get(i: &[u8]) -> Res<'_, Self> {
        be_u64(i)
    }
}

impl Xdr for bool {
    fn put(&self, out: &mut Vec<u8>) {
        u32::from(*self).put(out);
    }
    fn get(i: &[u8]) -> Res<'_, Self> {
        match be_u32(i)? {
            (rest, 0) => Ok((rest, false)),
            (rest, 1) => Ok((rest, true)),
            _ => invalid(i),
        }
    }
}

fn pad(len: usize) -> usize {
    (4 - len % 4) % 4
}

/// Variable-length opaque data of at most `max` bytes.
pub fn get_opaque(i: &[u8], max: usize) -> Res<'_, &[u8]> {
    let (rest, len) = be_u32(i)?;
    if len as usize > max {
        return invalid(i);
    }
    let (rest, data) = take(len as usize)(rest)?;
    let (rest, _) = take(pad(data.len()))(rest)?;
    Ok((rest, data))
}

pub fn put_opaque(data: &[u8], out: &mut Vec<u8>) {
    (data.len() as u32).put(out);
    out.extend_from_slice(data);
    out.extend(std::iter::repeat_n(0u8, pad(data.len())));
}

/// Variable-length opaque data or strings: bounded only by the record they arrive in.
impl Xdr for Vec<u8> {
    fn put(&self, out: &mut Vec<u8>) {
        put_opaque(self, out);
    }
    fn get(i: &[u8]) -> Res<'_, Self> {
        let (rest, data) = get_opaque(i, usize::MAX)?;
        Ok((rest, data.to_vec()))
    }
}

/// Fixed-length opaque data (verifiers).
impl Xdr for [u8; 8] {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
    fn get(i: &[u8]) -> Res<'_, Self> {
        let (rest, data) = take(8usize)(i)?;
        let mut v = [0; 8];
        v.copy_from_slice(data);
        Ok((rest, v))
    }
}

/// XDR optional data (`T *`): a boolean, then the value.
impl<T: Xdr> Xdr for Option<T> {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            Some(v) => {
                true.put(out);
                v.put(out);
            }
            None => false.put(out),
        }
    }
    fn get(i: &[u8]) -> Res<'_, Self> {
        let (i, present) = bool::get(i)?;
        if !present {
            return Ok((i, None));
        }
        let (i, v) = T::get(i)?;
        Ok((i, Some(v)))
    }
}

/// A counted array of at most `max` elements.
pub fn get_array<T: Xdr>(i: &[u8], max: usize) -> Res<'_, Vec<T>> {
    let (mut i, n) = be_u32(i)?;
    if n as usize > max {
        return invalid(i);
    }
    let mut items = Vec::new();
    for _ in 0..n {
        let (rest, item) = T::get(i)?;
        items.push(item);
        i = rest;
    }
    Ok((i, items))
}

pub fn put_array<T: Xdr>(items: &[T], out: &mut Vec<u8>) {
    (items.len() as u32).put(out);
    for item in items {
        item.put(out);
    }
}

/// A linked list (`entry *next`): each element preceded by TRUE, the end by FALSE.
pub fn get_list<T: Xdr>(mut i: &[u8]) -> Res<'_, Vec<T>> {
    let mut items = Vec::new();
    loop {
        let (rest, more) = bool::get(i)?;
        if !more {
            return Ok((rest, items));
        }
        let (rest, item) = T::get(rest)?;
        items.push(item);
        i = rest;
    }
}

pub fn put_list<T: Xdr>(items: &[T], out: &mut Vec<u8>) {
    for item in items {
        true.put(out);
        item.put(out);
    }
    false.put(out);
}

/// Decode a whole message: trailing bytes are an error, as is truncation.
pub fn decode_all<T: Xdr>(i: &[u8]) -> Option<T> {
    match T::get(i) {
        Ok(([], v)) => Some(v),
        _ => None,
    }
}

/// `struct` with its fields encoded in order.
#[macro_export]
macro_rules! xdr_struct {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Debug, PartialEq, Eq)]
        #[cfg_attr(test, derive(proptest_derive::Arbitrary))]
        pub struct $name { $($(#[$fm])* pub $field: $ty),* }

        impl $crate::xdr::Xdr for $name {
            fn put(&self, out: &mut Vec<u8>) {
                $($crate::xdr::Xdr::put(&self.$field, out);)*
            }
            #[allow(unused_variables)]
            fn get(i: &[u8]) -> $crate::xdr::Res<'_, Self> {
                $(let (i, $field) = <$ty as $crate::xdr::Xdr>::get(i)?;)*
                Ok((i, $name { $($field),* }))
            }
        }
    };
}

/// `enum` of named u32 values; other values do not decode.
#[macro_export]
macro_rules! xdr_enum {
    ($(#[$m:meta])* pub enum $name:ident { $($(#[$vm:meta])* $variant:ident = $value:expr),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[cfg_attr(test, derive(proptest_derive::Arbitrary))]
        pub enum $name { $($(#[$vm])* $variant = $value),* }

        impl $name {
            pub fn from_u32(v: u32) -> Option<Self> {
                match v {
                    $($value => Some($name::$variant),)*
                    _ => None,
                }
            }
        }

        impl $crate::xdr::Xdr for $name {
            fn put(&self, out: &mut Vec<u8>) {
                $crate::xdr::Xdr::put(&(*self as u32), out);
            }
            fn get(i: &[u8]) -> $crate::xdr::Res<'_, Self> {
                let (rest, v) = <u32 as $crate::xdr::Xdr>::get(i)?;
                match $name::from_u32(v) {
                    Some(e) => Ok((rest, e)),
                    None => $crate::xdr::invalid(i),
                }
            }
        }
    };
}

#[cfg(test)]
pub mod testing {
    //! The property every type must have: decode(encode(v)) == v, and any proper prefix of the
    //! encoding is `Incomplete`.
    use super::Xdr;

    pub fn round_trip<T: Xdr + PartialEq + std::fmt::Debug>(v: &T) {
        let bytes = v.to_bytes();
        assert_eq!(bytes.len() % 4, 0, "XDR is 4-byte aligned: {v:?}");
        let (rest, back) = T::get(&bytes).expect("decodes");
        assert!(rest.is_empty());
        assert_eq!(&back, v);
        // Every cut of short encodings; about 300 spread over long ones.
        let step = (bytes.len() / 256).max(1);
        let cuts = (0..bytes.len().min(64)).chain((64..bytes.len()).step_by(step)).chain(bytes.len().checked_sub(1));
        for cut in cuts {
            match T::get(&bytes[..cut]) {
                Err(nom::Err::Incomplete(_)) => {}
                other => panic!("prefix of {cut}/{} bytes of {v:?}: {other:?}", bytes.len()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitives() {
        testing::round_trip(&7u32);
        testing::round_trip(&u64::MAX);
        testing::round_trip(&true);
        testing::round_trip(&b"abcde".to_vec());
        testing::round_trip(&Some(3u32));
        testing::round_trip(&[1u8, 2, 3, 4, 5, 6, 7, 8]);
        assert!(bool::get(&[0, 0, 0, 2]).is_err());
        // A length far beyond the input is truncation, not an allocation.
        assert!(matches!(Vec::<u8>::get(&[0xff, 0xff, 0xff, 0xf0, 1]), Err(nom::Err::Incomplete(_))));
        assert!(get_opaque(&[0, 0, 0, 65], 64).is_err());
        assert!(get_array::<u32>(&[0, 0, 0, 17], 16).is_err());
        assert!(matches!(get_array::<u32>(&[0xff, 0xff, 0xff, 0xff], usize::MAX), Err(nom::Err::Incomplete(_))));
    }
}
