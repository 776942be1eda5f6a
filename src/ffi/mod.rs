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

// Exported functions take raw pointers from C and check each one before use (NULL, UTF-8);
// marking them `unsafe fn` would change nothing for their C callers.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::Error;

mod cache;
mod image;
mod options;

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
    // SAFETY: the caller passes NULL or a live error from this library.
    match unsafe { error.as_ref() } {
        Some(error) => error.code,
        None => ErrorCode::InvalidArgument,
    }
}

/// The message of `error`, borrowed until `oci_cache_error_free`; NULL when `error` is NULL.
#[no_mangle]
pub extern "C" fn oci_cache_error_message(error: *const oci_cache_error) -> *const c_char {
    // SAFETY: the caller passes NULL or a live error from this library.
    match unsafe { error.as_ref() } {
        Some(error) => error.message.as_ptr(),
        None => std::ptr::null(),
    }
}

/// Free an error. NULL is ignored.
#[no_mangle]
pub extern "C" fn oci_cache_error_free(error: *mut oci_cache_error) {
    if !error.is_null() {
        // SAFETY: a non-NULL error was made by `Box::into_raw` in this library and is freed once.
        drop(unsafe { Box::from_raw(error) });
    }
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
                let boxed = Box::new(oci_cache_error { code, message });
                // SAFETY: checked non-NULL above; the caller owns the new error.
                unsafe { *error_out = Box::into_raw(boxed) };
            }
            code
        }
    }
}

/// Borrow a required object argument.
pub(crate) fn required<'a, T>(pointer: *const T, name: &'static str) -> Result<&'a T, Error> {
    // SAFETY: the caller passes NULL or a live object of this library, per each function's docs.
    unsafe { pointer.as_ref() }.ok_or(Error::InvalidArgument {
        name,
        reason: "is NULL".into(),
    })
}

/// Borrow a required mutable object argument.
pub(crate) fn required_mut<'a, T>(pointer: *mut T, name: &'static str) -> Result<&'a mut T, Error> {
    // SAFETY: as for `required`, and the caller does not use the object from another thread now.
    unsafe { pointer.as_mut() }.ok_or(Error::InvalidArgument {
        name,
        reason: "is NULL".into(),
    })
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
pub(crate) fn put<T>(out: *mut *mut T, value: T) {
    // SAFETY: callers check `out` for NULL before doing any work.
    unsafe { *out = Box::into_raw(Box::new(value)) };
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
