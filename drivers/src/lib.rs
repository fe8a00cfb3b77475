//! Printer drivers for Farmhand: one module per protocol behind the `Printer` trait,
//! each with a simulator that speaks the real protocol over the real transport.
