//! Unit tests of the hub core (virtual time).
use super::*;
