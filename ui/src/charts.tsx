// uPlot charts as Preact components: a live time series and a latency histogram.
import { useEffect, useRef, type MutableRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

/** Creates a uPlot in the returned ref's element once, feeds it `data`, and follows the element's width. */
function usePlot(makeOptions: (width: number) => uPlot.Options, data: uPlot.AlignedData, height: number) {
  const ref = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  useEffect(() => {
    const el = ref.current!;
    plot.current = new uPlot(makeOptions(el.clientWidth || 400), data, el);
    const observer = new ResizeObserver(() => plot.current?.setSize({ width: el.clientWidth || 400, height }));
    observer.observe(el);
    return () => {
      observer.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
    // The plot is made once; data changes go through setData below.
  }, []);
  useEffect(() => {
    plot.current?.setData(data);
  }, [data]);
  return ref;
}

/** A chart as the page shows it: its title as the caption of the element `usePlot` draws into. */
function ChartFigure(props: { title: string; plot: MutableRef<HTMLDivElement | null> }) {
  return (
    <figure class="chart" data-chart={props.title}>
      <figcaption>{props.title}</figcaption>
      <div ref={props.plot} />
    </figure>
  );
}

export interface SeriesSpec {
  readonly label: string;
  readonly color: string;
}

/** A line chart over time (x in seconds since the epoch), one line per series. */
export function TimeChart(props: { title: string; series: readonly SeriesSpec[]; data: uPlot.AlignedData }) {
  const height = 160;
  const ref = usePlot(
    (width) => ({
      width,
      height,
      legend: { show: true, live: false },
      cursor: { drag: { x: false, y: false } },
      scales: { y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] } },
      series: [{}, ...props.series.map((s) => ({ label: s.label, stroke: s.color, width: 2, fill: `${s.color}22` }))],
      axes: [{}, { size: 60 }],
    }),
    props.data,
    height,
  );
  return <ChartFigure title={props.title} plot={ref} />;
}

/** Formats milliseconds for people: 850 ms, 1.2 s, 3.5 min. */
export function formatMs(ms: number | null): string {
  if (ms === null) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  if (ms < 3_600_000) return `${(ms / 60_000).toFixed(1)} min`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}

/** A histogram of latency buckets (`le` upper bounds in ms), one bar per non-empty bucket. */
export function Histogram(props: { title: string; color: string; buckets: readonly { le: number; count: number }[] }) {
  const height = 150;
  const labels = props.buckets.map((b) => `≤${formatMs(b.le)}`);
  const labelsRef = useRef(labels);
  labelsRef.current = labels;
  const data: uPlot.AlignedData = [props.buckets.map((_, i) => i), props.buckets.map((b) => b.count)];
  const ref = usePlot(
    (width) => ({
      width,
      height,
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: {
        x: { time: false, range: (_u, min, max) => [min - 0.5, max + 0.5] },
        y: { range: (_u, _min, max) => [0, Math.max(1, max)] },
      },
      series: [
        {},
        {
          label: 'tasks',
          stroke: props.color,
          fill: `${props.color}aa`,
          paths: uPlot.paths.bars!({ size: [0.8, 40] }),
          points: { show: false },
        },
      ],
      axes: [{ values: (_u, splits) => splits.map((i) => labelsRef.current[i] ?? ''), space: 60 }, { size: 60 }],
    }),
    data,
    height,
  );
  return <ChartFigure title={props.title} plot={ref} />;
}
