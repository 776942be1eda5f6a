//! The C ABI: a thin boundary that checks pointers, converts strings and codes, and calls the
//! same Rust API ([`crate::Cache`]) that the CLI and the tests use. No policy lives here.
//!
//! Conventions, for every function:
//! - Every pointer argument is checked: NULL where a value is required gives
//!   `OCI_CACHE_RESULT_INVALID_ARGUMENT`, never a crash. Strings must be NUL-terminated UTF-8;
//!   they are copied, never kept.
//! - Fallible functions return an `oci_cache_result` and, when `error_out` is not NULL, store an
//!   `oci_cache_error` there on failure (NULL on success); the caller owns it and frees it with
//!   `oci_cache_error_free`. There is no thread-local "last error".
//! - Objects a function creates are owned by the caller and freed with their `_free` (or, for the
//!   cache, `oci_cache_close`). Strings returned by accessors are borrowed: valid until the object
//!   that returned them is freed.
//! - No panic crosses the boundary: a panic becomes `OCI_CACHE_RESULT_PANIC`.
//! - Every handle the library makes is registered until it is freed: a handle used after its
//!   free or close (or of the wrong type) gives `OCI_CACHE_RESULT_CLOSED` without being read,
//!   and a second free is ignored.

// Exported functions take raw pointers from C and check each one before use (NULL, UTF-8);
// marking them `unsafe fn` would change nothing for their C callers.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::Error;

mod cache;
mod handles;
mod image;
mod options;

pub(crate) use handles::{export, is_live, release};

pub use cache::*;
pub use image::*;
pub use options::*;

/// The version of this ABI. It changes only when a function's meaning changes incompatibly;
/// functions and codes are only ever added.
pub const OCI_CACHE_ABI_VERSION: u32 = 1;

/// Every fallible function returns one of these codes (`oci_cache_result` in C).
pub use crate::error::ErrorCode;

/// An error: a result code and a message that says what failed, on what, and why.
#[allow(non_camel_case_types)]
pub struct oci_cache_error {
    code: ErrorCode,
    message: CString,
}

/// The result code of `error`; `OCI_CACHE_RESULT_INVALID_ARGUMENT` when `error` is NULL.
#[no_mangle]
pub extern "C" fn oci_cache_error_code(error: *const oci_cache_error) -> ErrorCode {
    required(error, "error").map_or(ErrorCode::InvalidArgument, |error| error.code)
}

/// The message of `error`, borrowed until `oci_cache_error_free`; NULL when `error` is NULL.
#[no_mangle]
pub extern "C" fn oci_cache_error_message(error: *const oci_cache_error) -> *const c_char {
    required(error, "error").map_or(std::ptr::null(), |error| error.message.as_ptr())
}

/// Free an error. NULL is ignored.
#[no_mangle]
pub extern "C" fn oci_cache_error_free(error: *mut oci_cache_error) {
    release(error, "error");
}

/// A short, static, lowercase name of a result code (`"integrity"`); `"unknown"` for a value this
/// version does not know.
#[no_mangle]
pub extern "C" fn oci_cache_result_name(code: u32) -> *const c_char {
    ErrorCode::from_u32(code)
        .map_or(c"unknown", ErrorCode::c_name)
        .as_ptr()
}

/// The ABI version of the loaded library, to compare with `OCI_CACHE_ABI_VERSION`.
#[no_mangle]
pub extern "C" fn oci_cache_abi_version() -> u32 {
    OCI_CACHE_ABI_VERSION
}

/// The library's version (`"0.1.0"`), static.
#[no_mangle]
pub extern "C" fn oci_cache_version() -> *const c_char {
    const VERSION: &CStr =
        match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
            Ok(version) => version,
            Err(_) => c"unknown",
        };
    VERSION.as_ptr()
}

/// Run `body` inside a panic boundary; on failure store the error in `error_out` and return its
/// code.
pub(crate) fn guard(
    error_out: *mut *mut oci_cache_error,
    body: impl FnOnce() -> Result<(), Error>,
) -> ErrorCode {
    if !error_out.is_null() {
        // SAFETY: a non-NULL `error_out` points at writable storage for one pointer.
        unsafe { *error_out = std::ptr::null_mut() };
    }

    let outcome = catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|panic| {
        let text = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Err(Error::Panic(text))
    });

    match outcome {
        Ok(()) => ErrorCode::Ok,
        Err(error) => {
            let code = error.code();
            if !error_out.is_null() {
                let message =
                    CString::new(error.to_string().replace('\0', " ")).unwrap_or_default();
                // SAFETY: checked non-NULL above; the caller owns the new error.
                unsafe { *error_out = export(oci_cache_error { code, message }) };
            }
            code
        }
    }
}

/// Borrow a required object argument.
pub(crate) fn required<'a, T: 'static>(
    pointer: *const T,
    name: &'static str,
) -> Result<&'a T, Error> {
    // SAFETY: `optional` returns only live handles of this library.
    optional(pointer, name)?.ok_or(Error::InvalidArgument {
        name,
        reason: "is NULL".into(),
    })
}

/// Borrow an optional object argument: None for NULL, an error for a handle that is not live
/// (freed, closed, or not from this library).
pub(crate) fn optional<'a, T: 'static>(
    pointer: *const T,
    name: &'static str,
) -> Result<Option<&'a T>, Error> {
    if pointer.is_null() {
        return Ok(None);
    }
    if !is_live(pointer) {
        return Err(Error::StaleHandle { name });
    }

    // SAFETY: the pointer is a live handle of type T made by `export`.
    Ok(Some(unsafe { &*pointer }))
}

/// Borrow a required mutable object argument.
pub(crate) fn required_mut<'a, T: 'static>(
    pointer: *mut T,
    name: &'static str,
) -> Result<&'a mut T, Error> {
    required(pointer, name)?;

    // SAFETY: checked live above; the caller does not use the object from another thread now
    // (the setters' documented contract).
    Ok(unsafe { &mut *pointer })
}

/// Read a required NUL-terminated UTF-8 string argument.
pub(crate) fn required_str<'a>(
    pointer: *const c_char,
    name: &'static str,
) -> Result<&'a str, Error> {
    optional_str(pointer, name)?.ok_or(Error::InvalidArgument {
        name,
        reason: "is NULL".into(),
    })
}

/// Read an optional NUL-terminated UTF-8 string argument.
pub(crate) fn optional_str<'a>(
    pointer: *const c_char,
    name: &'static str,
) -> Result<Option<&'a str>, Error> {
    if pointer.is_null() {
        return Ok(None);
    }

    // SAFETY: a non-NULL string argument is NUL-terminated and outlives this call.
    let text = unsafe { CStr::from_ptr(pointer) };
    text.to_str().map(Some).map_err(|e| Error::InvalidArgument {
        name,
        reason: format!("is not valid UTF-8 ({e})"),
    })
}

/// Store `value` in the required out-pointer `out`, transferring ownership to the caller.
pub(crate) fn put<T: 'static>(out: *mut *mut T, value: T) {
    // SAFETY: callers check `out` for NULL before doing any work.
    unsafe { *out = export(value) };
}

/// Check a required out-pointer and clear it.
pub(crate) fn check_out<T>(out: *mut *mut T, name: &'static str) -> Result<(), Error> {
    if out.is_null() {
        return Err(Error::InvalidArgument {
            name,
            reason: "is NULL".into(),
        });
    }
    // SAFETY: non-NULL out-pointers point at writable storage for one pointer.
    unsafe { *out = std::ptr::null_mut() };
    Ok(())
}

/// A string for C: interior NUL bytes (never expected) become spaces.
pub(crate) fn c_string(text: impl Into<String>) -> CString {
    let text: String = text.into();
    CString::new(text.replace('\0', " ")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_code_of(error: *mut oci_cache_error) -> ErrorCode {
        let code = oci_cache_error_code(error);
        oci_cache_error_free(error);
        code
    }

    #[test]
    fn a_panic_becomes_a_result_code_with_its_message() {
        let mut error = std::ptr::null_mut();

        let code = guard(&mut error, || panic!("deliberate"));

        assert_eq!(code, ErrorCode::Panic);
        // SAFETY: `guard` stored a live error with a NUL-terminated message.
        let message = unsafe { CStr::from_ptr(oci_cache_error_message(error)) };
        assert!(message.to_str().unwrap().contains("deliberate"));
        oci_cache_error_free(error);
    }

    #[test]
    fn freeing_twice_is_ignored() {
        let options = oci_cache_options_new();
        oci_cache_options_free(options);
        oci_cache_options_free(options);

        let mut error = std::ptr::null_mut();
        let code = oci_cache_options_set_uint(options, 3, 2, &mut error);
        assert_eq!(code, ErrorCode::Closed);
        assert_eq!(error_code_of(error), ErrorCode::Closed);
    }

    #[test]
    fn calls_after_close_fail_as_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = CString::new(dir.path().to_str().unwrap()).unwrap();
        let (mut cache, mut image, mut error) = (
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        );
        assert_eq!(
            oci_cache_open(path.as_ptr(), std::ptr::null(), &mut cache, &mut error),
            ErrorCode::Ok
        );
        oci_cache_close(cache);

        let reference = c"127.0.0.1:1/x:1.0.0";
        let code = oci_cache_fetch(
            cache,
            reference.as_ptr(),
            std::ptr::null(),
            &mut image,
            &mut error,
        );

        assert_eq!(code, ErrorCode::Closed);
        assert!(image.is_null());
        assert_eq!(error_code_of(error), ErrorCode::Closed);
        oci_cache_close(cache);
    }

    #[test]
    fn a_pointer_of_another_handle_type_is_refused() {
        let cancel = oci_cache_cancel_new();
        let mut error = std::ptr::null_mut();

        let code = oci_cache_options_set_uint(cancel.cast(), 3, 2, &mut error);

        assert_eq!(code, ErrorCode::Closed);
        assert_eq!(error_code_of(error), ErrorCode::Closed);
        oci_cache_cancel_free(cancel);
    }
}
