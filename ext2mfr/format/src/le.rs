//! Little-endian integer fields for on-disk structs.
//!
//! ext2 is little-endian on every host; storing the raw bytes and converting on
//! access keeps the structs `Pod` and correct on big-endian hosts too.

use bytemuck::{Pod, Zeroable};

#[repr(transparent)]
#[derive(Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct Le16([u8; 2]);

#[repr(transparent)]
#[derive(Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct Le32([u8; 4]);

impl Le16 {
    pub fn get(self) -> u16 {
        u16::from_le_bytes(self.0)
    }
    pub fn set(&mut self, v: u16) {
        self.0 = v.to_le_bytes();
    }
    pub fn new(v: u16) -> Self {
        Le16(v.to_le_bytes())
    }
}

impl Le32 {
    pub fn get(self) -> u32 {
        u32::from_le_bytes(self.0)
    }
    pub fn set(&mut self, v: u32) {
        self.0 = v.to_le_bytes();
    }
    pub fn new(v: u32) -> Self {
        Le32(v.to_le_bytes())
    }
}

impl std::fmt::Debug for Le16 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.get())
    }
}

impl std::fmt::Debug for Le32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.get())
    }
}
