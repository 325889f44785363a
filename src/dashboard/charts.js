// Charts of the overview, drawn with the vendored uPlot.
import uPlot from './vendor/uplot/uPlot.esm.js';
import { fmtMs } from './ui.js';

const GREEN = '#5a8f1f';
const GREEN_FILL = 'rgba(120, 176, 48, 0.75)';
const RED = '#c43d3d';
const RED_FILL = 'rgba(214, 69, 69, 0.9)';
const BLUE = '#2f6fd1';
const AMBER = '#d98a12';
const GRID = { stroke: '#e9ecef', width: 1 };
const AXIS = { stroke: '#6b7280', grid: GRID, ticks: { stroke: '#dfe3e8', width: 1, size: 4 }, font: '11px system-ui, sans-serif' };

/** Half a minute of room at each end, so that the first and last bars are drawn whole. */
const padMinute = (_u, min, max) => (min === null || max === null ? [min, max] : [min - 30, max + 30]);

function baseOptions(width, height) {
  return {
    width, height,
    cursor: { drag: { x: false, y: false }, points: { size: 6 } },
    legend: { live: true },
    padding: [12, 12, 0, 4],
  };
}

/** Callbacks per minute as bars: failures drawn over the total, so red is the failed share. */
export function throughputChart(el, width) {
  const bars = uPlot.paths.bars({ size: [0.7, 14] });
  return new uPlot({
    ...baseOptions(width, 220),
    scales: { x: { time: true, range: padMinute }, y: { range: (_u, _min, max) => [0, Math.max(4, Math.ceil(max * 1.15))] } },
    axes: [{ ...AXIS }, { ...AXIS, size: 44, values: (_u, ticks) => ticks.map((t) => (Number.isInteger(t) ? String(t) : '')) }],
    series: [
      { label: 'Minute', value: '{HH}:{mm}' },
      { label: 'Callbacks', stroke: GREEN, fill: GREEN_FILL, width: 0, paths: bars, points: { show: false } },
      { label: 'Failed', stroke: RED, fill: RED_FILL, width: 0, paths: bars, points: { show: false } },
    ],
  }, [[], [], []], el);
}

/** Change-to-callback latency, p50 and p95 per minute (successful callbacks). */
export function latencyChart(el, width) {
  return new uPlot({
    ...baseOptions(width, 220),
    scales: { x: { time: true, range: padMinute }, y: { range: (_u, _min, max) => [0, Math.max(10, max * 1.15)] } },
    axes: [{ ...AXIS }, { ...AXIS, size: 56, values: (_u, ticks) => ticks.map((t) => fmtMs(t)) }],
    series: [
      { label: 'Minute', value: '{HH}:{mm}' },
      // Points always shown: a minute with callbacks between idle ones has no line segment to draw.
      { label: 'p50', stroke: BLUE, width: 2, value: (_u, v) => fmtMs(v), points: { show: true, size: 5, fill: BLUE }, spanGaps: false },
      { label: 'p95', stroke: AMBER, width: 2, dash: [6, 4], value: (_u, v) => fmtMs(v), points: { show: true, size: 5, fill: AMBER }, spanGaps: false },
    ],
  }, [[], [], []], el);
}

/** Feeds the overview's series (oldest first) to both charts. */
export function updateCharts(throughput, latency, series) {
  const xs = series.map((p) => new Date(p.at).getTime() / 1000);
  throughput.setData([xs, series.map((p) => p.callbacks), series.map((p) => p.failures || null)]);
  latency.setData([xs, series.map((p) => p.latencyP50Ms), series.map((p) => p.latencyP95Ms)]);
}

/** Keeps charts as wide as their containers. */
export function autoResize(pairs) {
  const ro = new ResizeObserver(() => {
    for (const [chart, el] of pairs) {
      const w = Math.floor(el.clientWidth);
      if (w > 0 && w !== chart.width) chart.setSize({ width: w, height: chart.height });
    }
  });
  for (const [, el] of pairs) ro.observe(el);
  return () => ro.disconnect();
}
