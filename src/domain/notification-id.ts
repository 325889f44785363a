/**
 * A notification's id, `msg_<webhook public id>_<seq>`: the same across every retry of one
 * notification (the `webhook-id` header of standard-webhooks), new for the next change.
 */
export function notificationId(w: { readonly publicId: string; readonly notifySeq: number }): string {
  return `msg_${w.publicId}_${w.notifySeq}`;
}
