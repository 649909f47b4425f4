//! Actions, the virtual position, fill prices and money (§6).

use core::fmt;

use crate::model::CostParams;

/// How much of a position an action targets: 0 (flat, `WAIT`) ..= [`Intensity::MAX`] (strong),
/// checked where it is made ([`Intensity::new`]), so a lot table indexed by it
/// ([`Intensity::lot_index`]) needs no range check of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Intensity(u8);

impl Intensity {
    /// The largest intensity (`*_STRONG`).
    pub const MAX: u8 = 3;
    /// No position (`WAIT`).
    pub const FLAT: Intensity = Intensity(0);
    /// `*_WEAK`.
    pub const WEAK: Intensity = Intensity(1);
    /// `*_MODERATE`.
    pub const MODERATE: Intensity = Intensity(2);
    /// `*_STRONG`.
    pub const STRONG: Intensity = Intensity(3);

    /// The intensity `n`; `None` past [`Intensity::MAX`].
    pub const fn new(n: u8) -> Option<Intensity> {
        if n <= Intensity::MAX {
            Some(Intensity(n))
        } else {
            None
        }
    }

    /// The number 0..=3.
    pub const fn get(self) -> u8 {
        self.0
    }

    /// Its place in a per-position lot table (weak, moderate, strong): 0..=2; `None` when flat.
    pub const fn lot_index(self) -> Option<usize> {
        match self.0 {
            0 => None,
            n => Some(n as usize - 1),
        }
    }
}

impl fmt::Display for Intensity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// The seven discrete actions (the metadata's `actions`, seed §3): the one `Action` of the whole
/// system (`oracle_ipc::Action` is this type), ordered by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Action {
    /// Close any position, stay flat.
    Wait = 0,
    /// Long, intensity 1.
    LongWeak = 1,
    /// Long, intensity 2.
    LongModerate = 2,
    /// Long, intensity 3.
    LongStrong = 3,
    /// Short, intensity 1.
    ShortWeak = 4,
    /// Short, intensity 2.
    ShortModerate = 5,
    /// Short, intensity 3.
    ShortStrong = 6,
}

impl Action {
    /// All actions in index order.
    pub const ALL: [Action; 7] = [
        Action::Wait,
        Action::LongWeak,
        Action::LongModerate,
        Action::LongStrong,
        Action::ShortWeak,
        Action::ShortModerate,
        Action::ShortStrong,
    ];

    /// The action with this index (`None` past 6).
    pub fn from_index(i: usize) -> Option<Action> {
        Action::ALL.get(i).copied()
    }

    /// Its index 0..=6.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Its metadata name (`WAIT`, `LONG_WEAK`, …), the same as [`Action::as_str`].
    pub const fn name(self) -> &'static str {
        self.as_str()
    }

    /// The seed's name on the wire and in files (`WAIT`, `LONG_WEAK`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            Action::Wait => "WAIT",
            Action::LongWeak => "LONG_WEAK",
            Action::LongModerate => "LONG_MODERATE",
            Action::LongStrong => "LONG_STRONG",
            Action::ShortWeak => "SHORT_WEAK",
            Action::ShortModerate => "SHORT_MODERATE",
            Action::ShortStrong => "SHORT_STRONG",
        }
    }

    /// Parses the seed's name (exact case).
    pub fn from_name(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// The action of a (direction, intensity) pair; `None` for an impossible pair.
    pub const fn from_dir_int(direction: i8, intensity: u8) -> Option<Action> {
        Some(match (direction, intensity) {
            (0, 0) => Action::Wait,
            (1, 1) => Action::LongWeak,
            (1, 2) => Action::LongModerate,
            (1, 3) => Action::LongStrong,
            (-1, 1) => Action::ShortWeak,
            (-1, 2) => Action::ShortModerate,
            (-1, 3) => Action::ShortStrong,
            _ => return None,
        })
    }

    /// Target direction −1, 0 or 1.
    pub const fn direction(self) -> i8 {
        match self {
            Action::Wait => 0,
            Action::LongWeak | Action::LongModerate | Action::LongStrong => 1,
            Action::ShortWeak | Action::ShortModerate | Action::ShortStrong => -1,
        }
    }

    /// Target intensity 0..=3.
    pub const fn intensity(self) -> Intensity {
        match self {
            Action::Wait => Intensity::FLAT,
            Action::LongWeak | Action::ShortWeak => Intensity::WEAK,
            Action::LongModerate | Action::ShortModerate => Intensity::MODERATE,
            Action::LongStrong | Action::ShortStrong => Intensity::STRONG,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The virtual position. FLAT is direction 0, intensity 0, entry price 0.0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Position {
    /// −1 short, 0 flat, 1 long.
    pub direction: i8,
    /// 0 when flat, else 1..=3.
    pub intensity: u8,
    /// Fill price of the open (0.0 when flat).
    pub entry_price: f64,
}

impl Position {
    /// No position.
    pub const FLAT: Position = Position {
        direction: 0,
        intensity: 0,
        entry_price: 0.0,
    };

    /// Whether no position is open.
    pub fn is_flat(&self) -> bool {
        self.direction == 0
    }
}

/// Price a position of `direction` opens at on a bar closing at `close`:
/// long `c + (spread + slip) * pt`, short `c − slip * pt`.
pub fn open_price(costs: &CostParams, direction: i8, close: f64) -> f64 {
    if direction > 0 {
        close + (costs.spread_points + costs.slippage_points) * costs.point
    } else {
        close - costs.slippage_points * costs.point
    }
}

/// Price a position of `direction` closes (is marked) at on a bar closing at `close`:
/// long `c − slip * pt`, short `c + (spread + slip) * pt`.
pub fn close_price(costs: &CostParams, direction: i8, close: f64) -> f64 {
    if direction > 0 {
        close - costs.slippage_points * costs.point
    } else {
        close + (costs.spread_points + costs.slippage_points) * costs.point
    }
}

/// `lot_sizes[intensity]` (0.0 for an intensity past 3).
pub fn lots(costs: &CostParams, intensity: u8) -> f64 {
    costs
        .lot_sizes
        .get(usize::from(intensity))
        .copied()
        .unwrap_or(0.0)
}

/// Money of a price move: `(exit − entry) * dir / pt * money_per_point * lots`, left to right.
pub fn gross_pnl(
    costs: &CostParams,
    money_per_point: f64,
    position: &Position,
    exit_price: f64,
) -> f64 {
    (exit_price - position.entry_price) * f64::from(position.direction) / costs.point
        * money_per_point
        * lots(costs, position.intensity)
}

/// Realised P&L of closing `position` at `exit_price`: the gross P&L minus
/// `commission_per_lot * lots`.
pub fn realized_pnl(
    costs: &CostParams,
    money_per_point: f64,
    position: &Position,
    exit_price: f64,
) -> f64 {
    gross_pnl(costs, money_per_point, position, exit_price)
        - costs.commission_per_lot * lots(costs, position.intensity)
}

/// What the position rule did on one bar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transition {
    /// The position after the action.
    pub position: Position,
    /// P&L realised by closing the previous position, if it was closed.
    pub closed_pnl: Option<f64>,
    /// Whether a new position was opened.
    pub opened: bool,
}

/// The seed's position rule: the same direction and intensity hold; any change closes the open
/// position fully at this bar's close price, then opens the target unless it is WAIT.
pub fn apply(
    costs: &CostParams,
    money_per_point: f64,
    current: Position,
    action: Action,
    close: f64,
) -> Transition {
    let target = (action.direction(), action.intensity().get());
    if target == (current.direction, current.intensity) {
        return Transition {
            position: current,
            closed_pnl: None,
            opened: false,
        };
    }
    let closed_pnl = if current.is_flat() {
        None
    } else {
        let exit = close_price(costs, current.direction, close);
        Some(realized_pnl(costs, money_per_point, &current, exit))
    };
    let (position, opened) = if target.0 == 0 {
        (Position::FLAT, false)
    } else {
        let entry_price = open_price(costs, target.0, close);
        let p = Position {
            direction: target.0,
            intensity: target.1,
            entry_price,
        };
        (p, true)
    };
    Transition {
        position,
        closed_pnl,
        opened,
    }
}

/// Unrealised P&L of `position` marked at this bar's close (0.0 when flat).
pub fn unrealized_pnl(
    costs: &CostParams,
    money_per_point: f64,
    position: &Position,
    close: f64,
) -> f64 {
    if position.is_flat() {
        0.0
    } else {
        let mark = close_price(costs, position.direction, close);
        gross_pnl(costs, money_per_point, position, mark)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_parses_back_from_its_name_and_from_its_direction_and_intensity() {
        for (i, a) in Action::ALL.into_iter().enumerate() {
            assert_eq!(a.index(), i);
            assert_eq!(Action::from_name(a.as_str()), Some(a));
            assert_eq!(a.name(), a.as_str());
            assert_eq!(
                Action::from_dir_int(a.direction(), a.intensity().get()),
                Some(a)
            );
        }
        for bad in ["", "wait", "LONG", "LONG_WEAK "] {
            assert_eq!(Action::from_name(bad), None, "{bad:?}");
        }
        assert_eq!(Action::from_dir_int(0, 1), None);
        assert_eq!(Action::from_dir_int(1, 0), None);
        assert_eq!(Action::from_dir_int(2, 1), None);
        assert!(Action::Wait < Action::LongWeak && Action::LongStrong < Action::ShortWeak);
    }

    #[test]
    fn an_intensity_is_0_to_3_checked_and_places_its_lots_weak_moderate_strong() {
        for n in 0..=Intensity::MAX {
            assert_eq!(Intensity::new(n).map(Intensity::get), Some(n));
        }
        for bad in [4, 5, u8::MAX] {
            assert_eq!(Intensity::new(bad), None, "{bad}");
        }
        assert_eq!(Intensity::FLAT.lot_index(), None);
        assert_eq!(Intensity::WEAK.lot_index(), Some(0));
        assert_eq!(Intensity::MODERATE.lot_index(), Some(1));
        assert_eq!(Intensity::STRONG.lot_index(), Some(2));
        assert_eq!(Action::Wait.intensity(), Intensity::FLAT);
        assert_eq!(Action::ShortWeak.intensity(), Intensity::WEAK);
        assert_eq!(Action::LongModerate.intensity(), Intensity::MODERATE);
        assert_eq!(Action::LongStrong.intensity(), Intensity::STRONG);
    }

    /// The EURUSD costs of the contract's worked example.
    pub(crate) fn eurusd() -> CostParams {
        CostParams {
            point: 0.00001,
            pip_value: 10.0,
            spread_points: 7.0,
            slippage_points: 2.0,
            commission_per_lot: 7.0,
            digits: 5,
            lot_sizes: [0.0, 0.01, 0.03, 0.05],
        }
    }

    #[test]
    fn worked_example_is_1_82() {
        let c = eurusd();
        let money_per_point = c.pip_value / 10.0;
        assert_eq!(money_per_point, 1.0);
        let entry = open_price(&c, 1, 1.08500);
        assert_eq!(entry, 1.08500 + 9.0 * 0.00001);
        let pos = Position {
            direction: 1,
            intensity: 1,
            entry_price: entry,
        };
        let exit = close_price(&c, 1, 1.08700);
        assert_eq!(exit, 1.08700 - 2.0 * 0.00001);
        let points = (exit - entry) / c.point;
        assert!((points - 189.0).abs() < 1e-6, "{points}");
        let pnl = realized_pnl(&c, money_per_point, &pos, exit);
        assert!((pnl - 1.82).abs() < 1e-12, "{pnl}");
        let mut buf = [0u8; 32];
        assert_eq!(fmt6(pnl, &mut buf), "1.820000");
    }

    #[test]
    fn short_prices_mirror_long() {
        let c = eurusd();
        assert_eq!(open_price(&c, -1, 1.1), 1.1 - 2.0 * 0.00001);
        assert_eq!(close_price(&c, -1, 1.1), 1.1 + 9.0 * 0.00001);
        // A short opened and closed on the same close loses the spread and both slippages.
        let pos = Position {
            direction: -1,
            intensity: 3,
            entry_price: open_price(&c, -1, 1.1),
        };
        let gross = gross_pnl(&c, 1.0, &pos, close_price(&c, -1, 1.1));
        assert!((gross - (-11.0 * 0.05)).abs() < 1e-9, "{gross}");
    }

    #[test]
    fn action_table() {
        let table = [(0, 0), (1, 1), (1, 2), (1, 3), (-1, 1), (-1, 2), (-1, 3)];
        for (i, (d, n)) in table.iter().enumerate() {
            let a = Action::from_index(i).unwrap();
            assert_eq!(a.index(), i);
            assert_eq!((a.direction(), a.intensity().get()), (*d, *n));
        }
        assert_eq!(Action::from_index(7), None);
        assert_eq!(Action::ShortModerate.name(), "SHORT_MODERATE");
    }

    /// Formats with 6 decimals into a stack buffer (no alloc in core tests).
    fn fmt6(v: f64, buf: &mut [u8; 32]) -> &str {
        use core::fmt::Write;
        struct W<'a>(&'a mut [u8; 32], usize);
        impl Write for W<'_> {
            fn write_str(&mut self, s: &str) -> core::fmt::Result {
                let end = self.1 + s.len();
                self.0[self.1..end].copy_from_slice(s.as_bytes());
                self.1 = end;
                Ok(())
            }
        }
        let mut w = W(buf, 0);
        write!(w, "{:.6}", v + 0.0).unwrap();
        let n = w.1;
        core::str::from_utf8(&buf[..n]).unwrap()
    }
}
