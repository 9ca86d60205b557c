//! Document batches: primary-key resolution, reserved fields, `_miroir_shard` injection.
//! Completed by issue 2.
