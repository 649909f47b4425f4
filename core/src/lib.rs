#![no_std]
//! Oracle Trader core (stub, being written).
