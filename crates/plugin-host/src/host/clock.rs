//! `clock`: the host's time base, the meter's.

use crate::wit::latest::backend::energy_star::plugin::clock::Host;

use super::ClockView;

impl Host for ClockView {
    fn now_ns(&mut self) -> u64 {
        self.clock.now_ns()
    }
}
