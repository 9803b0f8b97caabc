import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface Series {
  label: string;
  /** Which y axis: 'y' (left) or 'y2' (right). */
  scale: 'y' | 'y2';
  stroke: string;
  values: (number | null)[];
}

/** A time chart (uPlot) that follows its container's width; the data table next to it is the accessible form. */
export function TimeChart({ title, times, series, axes }: { title: string; times: number[]; series: Series[]; axes: [string, string?] }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const data = [times.map((t) => t / 1000), ...series.map((s) => s.values)] as uPlot.AlignedData;

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const width = Math.max(260, el.clientWidth);
    plot.current = new uPlot(
      {
        width,
        height: 200,
        title,
        series: [{}, ...series.map((s) => ({ label: s.label, scale: s.scale, stroke: s.stroke, width: 2, spanGaps: true }))],
        scales: { x: { time: true } },
        axes: [{}, { scale: 'y', label: axes[0] }, ...(axes[1] ? [{ scale: 'y2', side: 1 as const, label: axes[1], grid: { show: false } }] : [])],
      },
      data,
      el,
    );
    const resize = new ResizeObserver(() => plot.current?.setSize({ width: Math.max(260, el.clientWidth), height: 200 }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
  }, []);

  useEffect(() => {
    plot.current?.setData(data);
  });

  return <div ref={box} class="chart" role="img" aria-label={`${title}: chart of the last hour`} />;
}
