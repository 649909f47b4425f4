//! The replayed market: per symbol a bar series turned into ticks, the forming bar of every
//! period, and closed-bar history. Sans-IO: the clock is moved by the caller.
//!
//! ## Ticks from bars (the sim's choice; documented because clients see it)
//! Each bar of a symbol's finest series becomes four bid ticks at `open + k·len/4` (k = 0..3):
//! open, then low and high (low first for an up bar, high first for a down bar), then close. The
//! bar's tick volume is split over the four ticks. So after the last tick of a bar the forming
//! trendbar equals the file's bar exactly, and every coarser period is the aggregate of them.
//!
//! ## Closed bars
//! A bar of period P is closed once the market clock reaches its bucket end. History requests
//! return closed bars only (the forming bar is only in `SpotEvent.trendbar`).

use std::collections::BTreeMap;

use crate::bars::{self, ALL_PERIODS, Bar, Period, PeriodExt};
use crate::symbols::{SymbolData, SymbolSpec};

/// One bid tick of one symbol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tick {
    /// Index of the symbol in [`Market::symbols`].
    pub symbol: usize,
    /// Market time, Unix ms.
    pub time_ms: i64,
    /// Bid, 1e-5 units.
    pub bid: i64,
}

/// One symbol's market state.
#[derive(Debug)]
pub struct SymbolMarket {
    /// Open API symbol id.
    pub id: i64,
    /// Trading spec.
    pub spec: SymbolSpec,
    /// Period of the source series.
    pub base: Period,
    /// Closed-bar series by period (every period that is a multiple of `base`).
    pub series: BTreeMap<Period, Vec<Bar>>,
    /// Next tick index (bar index × 4 + k) in the base series.
    cursor: usize,
    /// Last bid (from the last tick, or the last closed bar before the start).
    pub last_bid: Option<i64>,
    /// Time of the last emitted tick.
    pub last_tick_ms: Option<i64>,
    /// Forming bar per period (from emitted ticks).
    pub forming: BTreeMap<Period, Bar>,
    /// Periods whose bar the last tick closed (it opened the next one).
    pub closed_by_last_tick: Vec<Period>,
}

impl SymbolMarket {
    fn base_bars(&self) -> &[Bar] {
        self.series
            .get(&self.base)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    fn tick_len(&self) -> i64 {
        self.base.fixed_ms().unwrap_or(60_000) / 4
    }

    /// The tick at tick index `idx`: (time, bid, volume added by this tick).
    fn tick_at(&self, idx: usize) -> Option<(i64, i64, i64)> {
        let bar = self.base_bars().get(idx / 4)?;
        let k = (idx % 4) as i64;
        let up = bar.close >= bar.open;
        let price = match k {
            0 => bar.open,
            1 if up => bar.low,
            1 => bar.high,
            2 if up => bar.high,
            2 => bar.low,
            _ => bar.close,
        };
        let vol = bar.volume * (k + 1) / 4 - bar.volume * k / 4;
        Some((bar.time_ms + k * self.tick_len(), price, vol))
    }

    fn next_tick_time(&self) -> Option<i64> {
        self.tick_at(self.cursor).map(|t| t.0)
    }

    fn apply_tick(&mut self, time: i64, bid: i64, vol: i64) {
        self.last_bid = Some(bid);
        self.last_tick_ms = Some(time);
        self.closed_by_last_tick.clear();
        let base = self.base;
        for p in ALL_PERIODS
            .iter()
            .copied()
            .filter(|p| p.is_multiple_of(base))
        {
            let start = p.bucket_start(time);
            match self.forming.get_mut(&p) {
                Some(b) if b.time_ms == start => {
                    b.high = b.high.max(bid);
                    b.low = b.low.min(bid);
                    b.close = bid;
                    b.volume += vol;
                }
                other => {
                    if other.is_some() {
                        self.closed_by_last_tick.push(p);
                    }
                    self.forming.insert(
                        p,
                        Bar {
                            time_ms: start,
                            open: bid,
                            high: bid,
                            low: bid,
                            close: bid,
                            volume: vol,
                        },
                    );
                }
            }
        }
    }

    /// Ask for a bid: bid + spread.
    pub fn ask_for(&self, bid: i64) -> i64 {
        bid + self.spec.spread_points * self.spec.point_units()
    }

    /// Whether history for `period` can be served (a multiple of the source period).
    pub fn has_period(&self, period: Period) -> bool {
        self.series.contains_key(&period)
    }

    /// Closed bars of `period` with open time in `[from, to)` and bucket end ≤ `now`.
    pub fn closed_bars(&self, period: Period, from_ms: i64, to_ms: i64, now_ms: i64) -> &[Bar] {
        let Some(all) = self.series.get(&period) else {
            return &[];
        };
        let lo = all.partition_point(|b| b.time_ms < from_ms);
        let hi =
            all.partition_point(|b| b.time_ms < to_ms && period.bucket_end(b.time_ms) <= now_ms);
        if hi <= lo { &[] } else { &all[lo..hi] }
    }

    /// Emitted ticks with time in `[from, to]` and ≤ `now` (bid prices), oldest first.
    pub fn ticks_between(
        &self,
        from_ms: i64,
        to_ms: i64,
        now_ms: i64,
        limit: usize,
    ) -> (Vec<(i64, i64)>, bool) {
        let bars = self.base_bars();
        let first_bar = bars.partition_point(|b| b.time_ms + 4 * self.tick_len() <= from_ms);
        let to = to_ms.min(now_ms);
        let mut out = Vec::new();
        let mut idx = first_bar * 4;
        while idx < self.cursor {
            let Some((t, p, _)) = self.tick_at(idx) else {
                break;
            };
            if t > to {
                break;
            }
            if t >= from_ms {
                out.push((t, p));
            }
            idx += 1;
        }
        // keep the newest `limit`
        let more = out.len() > limit;
        if more {
            out.drain(..out.len() - limit);
        }
        (out, more)
    }
}

/// How the replay start is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Start after this many source bars of history (the latest such time over all symbols).
    AfterBars(usize),
    /// Start at this market time (Unix ms).
    At(i64),
}

/// The whole market.
#[derive(Debug)]
pub struct Market {
    /// Symbols, by index; ids are `SymbolMarket::id`.
    pub symbols: Vec<SymbolMarket>,
    /// Market clock, Unix ms.
    pub now_ms: i64,
    /// Where the replay started.
    pub start_ms: i64,
    /// Where the replay stops (inclusive: a tick at exactly `end_ms`, the open of the next bar,
    /// is still sent so the last bar before it closes); `None`: at the end of the data.
    pub end_ms: Option<i64>,
}

impl Market {
    /// Builds the market. Symbol ids: built-in names get 1 (EURUSD), 2 (US500), 3 (AAPL); the
    /// others 101, 102, … in name order.
    pub fn new(mut data: Vec<SymbolData>, start: Start) -> Self {
        data.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        let mut next_id = 101;
        let mut symbols = Vec::new();
        for d in data {
            let id = match d.spec.name.as_str() {
                "EURUSD" => 1,
                "US500" => 2,
                "AAPL" => 3,
                _ => {
                    next_id += 1;
                    next_id - 1
                }
            };
            let mut series = BTreeMap::new();
            for p in ALL_PERIODS
                .iter()
                .copied()
                .filter(|p| p.is_multiple_of(d.period))
            {
                let v = if p == d.period {
                    d.bars.clone()
                } else {
                    bars::aggregate(&d.bars, p)
                };
                series.insert(p, v);
            }
            symbols.push(SymbolMarket {
                id,
                spec: d.spec,
                base: d.period,
                series,
                cursor: 0,
                last_bid: None,
                last_tick_ms: None,
                forming: BTreeMap::new(),
                closed_by_last_tick: Vec::new(),
            });
        }
        let start_ms = match start {
            Start::At(t) => t,
            Start::AfterBars(n) => symbols
                .iter()
                .filter_map(|s| {
                    let b = s.base_bars();
                    b.get(n.min(b.len().saturating_sub(1))).map(|b| b.time_ms)
                })
                .max()
                .unwrap_or(0),
        };
        for s in &mut symbols {
            let bars = s.base_bars();
            let first = bars.partition_point(|b| b.time_ms < start_ms);
            s.last_bid = first.checked_sub(1).map(|i| bars[i].close);
            s.cursor = first * 4;
        }
        Market {
            symbols,
            now_ms: start_ms,
            start_ms,
            end_ms: None,
        }
    }

    /// Limits the replay to `n` bars after the start, counted in the coarsest source period (so
    /// every stream gets at least `n` live bars); all streams stop at the same time. The first
    /// tick of the following bar is still sent, so the n-th bar is seen to close.
    pub fn limit_live_bars(&mut self, n: usize) {
        let len = self.coarsest_base_ms();
        self.end_ms = Some(self.start_ms.saturating_add(len.saturating_mul(n as i64)));
    }

    /// The coarsest source period's length in ms (for bars-per-second speeds).
    pub fn coarsest_base_ms(&self) -> i64 {
        self.symbols
            .iter()
            .filter_map(|s| s.base.fixed_ms())
            .max()
            .unwrap_or(60_000)
    }

    fn sym_next(&self, i: usize) -> Option<i64> {
        self.symbols[i]
            .next_tick_time()
            .filter(|t| self.end_ms.is_none_or(|e| *t <= e))
    }

    /// Index of a symbol id.
    pub fn index_of(&self, id: i64) -> Option<usize> {
        self.symbols.iter().position(|s| s.id == id)
    }

    /// Market time of the next tick, if any remain.
    pub fn next_tick_time(&self) -> Option<i64> {
        (0..self.symbols.len())
            .filter_map(|i| self.sym_next(i))
            .min()
    }

    /// True when every symbol's data is exhausted.
    pub fn exhausted(&self) -> bool {
        self.next_tick_time().is_none()
    }

    /// True when the symbol has no price yet or its data is exhausted (orders get MARKET_CLOSED).
    pub fn is_closed(&self, idx: usize) -> bool {
        let s = &self.symbols[idx];
        s.last_bid.is_none() || self.sym_next(idx).is_none()
    }

    /// Emits every tick with time ≤ `t_ms` (in time order, ties by symbol index) and moves the
    /// clock to `t_ms` (never backwards).
    pub fn advance_to(&mut self, t_ms: i64, out: &mut Vec<Tick>) {
        while let Some(next) = self.next_tick_time() {
            if next > t_ms {
                break;
            }
            self.emit_at(next, out);
        }
        let t = self.end_ms.map_or(t_ms, |e| t_ms.min(e));
        self.now_ms = self.now_ms.max(t);
    }

    /// Emits the ticks of the next tick time (all symbols at that time) and moves the clock
    /// there. When the data is exhausted, moves the clock to the end of the last bars (so they
    /// count as closed) and returns false.
    pub fn step(&mut self, out: &mut Vec<Tick>) -> bool {
        match self.next_tick_time() {
            Some(t) => {
                self.emit_at(t, out);
                self.now_ms = self.now_ms.max(t);
                true
            }
            None => {
                let end = self
                    .symbols
                    .iter()
                    .filter_map(|s| s.base_bars().last().map(|b| s.base.bucket_end(b.time_ms)))
                    .max()
                    .unwrap_or(self.now_ms);
                let end = self.end_ms.map_or(end, |e| end.min(e));
                self.now_ms = self.now_ms.max(end);
                false
            }
        }
    }

    fn emit_at(&mut self, t: i64, out: &mut Vec<Tick>) {
        for (i, s) in self.symbols.iter_mut().enumerate() {
            if let Some((time, bid, vol)) = s.tick_at(s.cursor) {
                if time == t {
                    s.cursor += 1;
                    s.apply_tick(time, bid, vol);
                    out.push(Tick {
                        symbol: i,
                        time_ms: time,
                        bid,
                    });
                }
            }
        }
        self.now_ms = self.now_ms.max(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bars::parse_iso_utc;

    fn data() -> Vec<SymbolData> {
        let t0 = parse_iso_utc("2021-03-01T00:00:00Z").unwrap();
        let bars = (0..8)
            .map(|i| {
                let o = 110_000 + i * 10;
                Bar {
                    time_ms: t0 + i * 900_000,
                    open: o,
                    high: o + 20,
                    low: o - 5,
                    close: o + 10,
                    volume: 8,
                }
            })
            .collect();
        vec![SymbolData {
            spec: SymbolSpec::builtin("EURUSD").unwrap(),
            period: Period::M15,
            bars,
        }]
    }

    #[test]
    fn ticks_rebuild_the_bar_exactly() {
        let mut m = Market::new(data(), Start::AfterBars(4));
        assert_eq!(m.symbols[0].last_bid, Some(110_040));
        let mut out = Vec::new();
        assert!(m.step(&mut out));
        assert_eq!(out.len(), 1);
        for _ in 0..3 {
            m.step(&mut out);
        }
        let bar4 = m.symbols[0].series[&Period::M15][4];
        assert_eq!(m.symbols[0].forming[&Period::M15], bar4);
        // bar 4 is not closed until the clock reaches its end
        assert_eq!(
            m.symbols[0]
                .closed_bars(Period::M15, 0, i64::MAX, m.now_ms)
                .len(),
            4
        );
        m.step(&mut out);
        assert_eq!(
            m.symbols[0]
                .closed_bars(Period::M15, 0, i64::MAX, m.now_ms)
                .len(),
            5
        );
        // H1 forming bar: bar 4 (01:00) and the first tick of bar 5
        let h1 = m.symbols[0].forming[&Period::H1];
        assert_eq!(h1.time_ms, parse_iso_utc("2021-03-01T01:00:00Z").unwrap());
        assert_eq!(h1.volume, 8 + 2);
    }

    #[test]
    fn run_to_end_closes_every_bar() {
        let mut m = Market::new(data(), Start::AfterBars(0));
        let mut out = Vec::new();
        while m.step(&mut out) {}
        assert_eq!(out.len(), 32);
        assert!(m.exhausted());
        assert_eq!(
            m.symbols[0]
                .closed_bars(Period::M15, 0, i64::MAX, m.now_ms)
                .len(),
            8
        );
        assert_eq!(
            m.symbols[0]
                .closed_bars(Period::H1, 0, i64::MAX, m.now_ms)
                .len(),
            2
        );
    }

    #[test]
    fn live_bar_limit_closes_the_last_bar() {
        let mut m = Market::new(data(), Start::AfterBars(2));
        m.limit_live_bars(3);
        let mut out = Vec::new();
        while m.step(&mut out) {}
        // 3 bars × 4 ticks + the opening tick of the 4th
        assert_eq!(out.len(), 13);
        assert_eq!(m.now_ms, m.start_ms + 3 * 900_000);
        assert_eq!(
            m.symbols[0]
                .closed_bars(Period::M15, 0, i64::MAX, m.now_ms)
                .len(),
            5
        );
        assert!(m.is_closed(0));
    }

    #[test]
    fn advance_is_ordered() {
        let mut m = Market::new(data(), Start::AfterBars(0));
        let mut out = Vec::new();
        let t = m.start_ms + 900_000;
        m.advance_to(t, &mut out);
        assert_eq!(out.len(), 5);
        assert!(out.windows(2).all(|w| w[0].time_ms <= w[1].time_ms));
        assert_eq!(m.now_ms, t);
    }
}
