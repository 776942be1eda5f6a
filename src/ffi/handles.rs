//! The set of live handles: every object the library gives to C is registered here when it is
//! made and removed when it is freed. A pointer that is not in the set (freed twice, used after
//! close, or not from this library) is refused without being touched.

use std::any::TypeId;
use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

static LIVE: OnceLock<Mutex<HashSet<(usize, TypeId)>>> = OnceLock::new();

fn live() -> std::sync::MutexGuard<'static, HashSet<(usize, TypeId)>> {
    LIVE.get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// Move `value` to the heap and register it; the caller (C) owns the pointer.
pub(crate) fn export<T: 'static>(value: T) -> *mut T {
    let pointer = Box::into_raw(Box::new(value));
    live().insert((pointer as usize, TypeId::of::<T>()));
    pointer
}

/// True when `pointer` is a live handle of type `T`.
pub(crate) fn is_live<T: 'static>(pointer: *const T) -> bool {
    live().contains(&(pointer as usize, TypeId::of::<T>()))
}

/// Free a handle made by [`export`]. NULL is ignored; a pointer that is not live (freed
/// already) is ignored too, with an ERROR event, instead of being freed twice.
pub(crate) fn release<T: 'static>(pointer: *mut T, name: &'static str) {
    if pointer.is_null() {
        return;
    }
    if !live().remove(&(pointer as usize, TypeId::of::<T>())) {
        tracing::error!(
            handle = name,
            "free of a handle that is not live (freed twice?) ignored"
        );
        return;
    }

    // SAFETY: the pointer was made by `export` for this type and was live until the line above
    // removed it, so this is its only free.
    drop(unsafe { Box::from_raw(pointer) });
}
