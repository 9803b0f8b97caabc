import { useEffect, useRef } from 'preact/hooks';

/** A modal confirmation (the native <dialog>: focus is trapped, Escape cancels). */
export function Confirm({ message, confirmLabel, onConfirm, onCancel }: { message: string; confirmLabel: string; onConfirm: () => void; onCancel: () => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
  }, []);
  return (
    <dialog ref={ref} aria-labelledby="confirm-title" onCancel={onCancel}>
      <h2 id="confirm-title">Please confirm</h2>
      <p>{message}</p>
      <div class="actions">
        <button type="button" class="secondary" onClick={onCancel}>
          Cancel
        </button>
        <button type="button" class="danger" onClick={onConfirm} autofocus>
          {confirmLabel}
        </button>
      </div>
    </dialog>
  );
}
