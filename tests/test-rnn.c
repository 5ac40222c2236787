/* test-rnn.c: RNN (tanh/ReLU), LSTM and GRU against finite differences and PyTorch:
 * multi-layer, bidirectional, initial and final states, variable lengths, dropout, errors. */
#include "bp-test.h"

#include <math.h>
#include <string.h>

#include "bp-backend.h"
#include "bp-ops-eltwise.h"
#include "bp-ops-rnn.h"
#include "bp-rng.h"

typedef struct {
  BpRnnParams p;
  int64_t batch, seq;
  bool with_h0, with_c0, with_lengths, training;
  int64_t lengths[8];
} RnnCase;

/* inputs: x, h0, c0, weights... (h0 / c0 NULL where the case has none) */
static BpTensor **
make_inputs (const RnnCase *rc, int *n)
{
  const BpRnnParams *p = &rc->p;
  int n_w = bp_rnn_n_weights (p), dirs = p->bidirectional ? 2 : 1;
  *n = 3 + n_w;
  BpTensor **in = g_new0 (BpTensor *, *n);
  int64_t xs[3] = {p->batch_first ? rc->batch : rc->seq, p->batch_first ? rc->seq : rc->batch,
                   p->input_size};
  int64_t ss[3] = {(int64_t) p->num_layers * dirs, rc->batch, p->hidden_size};
  in[0] = bp_test_rand (3, xs, -1, 1, true);
  if (rc->with_h0)
    in[1] = bp_test_rand (3, ss, -0.5f, 0.5f, true);
  if (rc->with_c0)
    in[2] = bp_test_rand (3, ss, -0.5f, 0.5f, true);
  float bound = 1.0f / sqrtf ((float) p->hidden_size);
  for (int k = 0; k < n_w; k++) {
    char name[48];
    int64_t shape[2];
    int ndim;
    bp_rnn_weight_info (p, k, name, sizeof name, shape, &ndim);
    in[3 + k] = bp_test_rand (ndim, shape, -bound, bound, true);
  }
  return in;
}

static void
free_inputs (BpTensor **in, int n)
{
  for (int k = 0; k < n; k++)
    bp_tensor_unref (in[k]);
  g_free (in);
}

/* out, h_n and c_n flattened into one (1, N) tensor, so one check covers all three. */
static BpTensor *
fwd_rnn (BpTensor **in, void *user)
{
  const RnnCase *rc = user;
  if (rc->training)
    bp_rng_seed (99); /* the same dropout masks on every call */
  BpTensor *hn = NULL, *cn = NULL;
  BpTensor *out = bp_rnn (&rc->p, in[0], in + 3, in[1], in[2],
                          rc->with_lengths ? rc->lengths : NULL, rc->training, &hn,
                          rc->p.mode == BP_RNN_LSTM ? &cn : NULL);
  g_assert_nonnull (out);
  BpTensor *parts[3];
  int n = 0;
  BpTensor *all[] = {out, hn, cn};
  for (int k = 0; k < 3; k++)
    if (all[k])
      parts[n++] = bp_reshape (all[k], 2, (int64_t[]){1, -1});
  BpTensor *cat = bp_concat (n, parts, 1);
  for (int k = 0; k < n; k++)
    bp_tensor_unref (parts[k]);
  for (int k = 0; k < 3; k++)
    bp_tensor_unref (all[k]);
  return cat;
}

static void
check_grad_case (const RnnCase *rc)
{
  int n;
  BpTensor **in = make_inputs (rc, &n);
  bp_test_check_grad (fwd_rnn, n, in, (void *) rc, 1e-2f, 1e-2, 24);
  free_inputs (in, n);
}

static RnnCase
rnn_case (BpRnnMode mode, int layers, bool bidir, bool batch_first)
{
  RnnCase rc = {
    .p = {mode, 3, 4, layers, true, batch_first, bidir, 0.0f},
    .batch = 3,
    .seq = 5,
  };
  return rc;
}

static void
test_rnn_grad (void)
{
  bp_rng_seed (1);
  /* ReLU's kinks: a bias moves every step's pre-activation, and a finite step crosses some of
   * the many near 0; the ReLU RNN is checked against PyTorch (/rnn/torch) instead */
  for (int mode = BP_RNN_TANH; mode <= BP_RNN_GRU; mode++) {
    if (mode == BP_RNN_RELU)
      continue;
    RnnCase rc = rnn_case ((BpRnnMode) mode, 2, true, true);
    rc.with_h0 = true;
    rc.with_c0 = mode == BP_RNN_LSTM;
    check_grad_case (&rc);
    /* one layer, time-major, variable lengths, no bias */
    rc = rnn_case ((BpRnnMode) mode, 1, false, false);
    rc.p.bias = false;
    rc.with_lengths = true;
    rc.lengths[0] = 2;
    rc.lengths[1] = 5;
    rc.lengths[2] = 1;
    check_grad_case (&rc);
    /* bidirectional with lengths and initial states */
    rc = rnn_case ((BpRnnMode) mode, 2, true, true);
    rc.with_h0 = true;
    rc.with_c0 = mode == BP_RNN_LSTM;
    rc.with_lengths = true;
    rc.lengths[0] = 4;
    rc.lengths[1] = 1;
    rc.lengths[2] = 5;
    check_grad_case (&rc);
  }
}

/* Dropout between layers: the backward uses the forward's masks. */
static void
test_rnn_dropout_grad (void)
{
  bp_rng_seed (2);
  RnnCase rc = rnn_case (BP_RNN_LSTM, 3, true, true);
  rc.p.dropout = 0.3f;
  rc.training = true;
  check_grad_case (&rc);
  rc = rnn_case (BP_RNN_GRU, 2, false, true);
  rc.p.dropout = 0.5f;
  rc.training = true;
  check_grad_case (&rc);
}

/* Dropout changes the output in training only, repeats with the seed, and the surviving
 * values of layer 1's input are scaled (checked through a 2-layer net being different from
 * the p = 0 run but equal in eval). */
static void
test_rnn_dropout (void)
{
  bp_rng_seed (3);
  RnnCase rc = rnn_case (BP_RNN_GRU, 2, false, true);
  int n;
  BpTensor **in = make_inputs (&rc, &n);
  bool was = bp_set_grad_enabled (false);
  BpRnnParams drop = rc.p, none = rc.p;
  drop.dropout = 0.5f;
  BpTensor *y0 = bp_rnn (&none, in[0], in + 3, NULL, NULL, NULL, true, NULL, NULL);
  BpTensor *ye = bp_rnn (&drop, in[0], in + 3, NULL, NULL, NULL, false, NULL, NULL);
  bp_rng_seed (7);
  BpTensor *y1 = bp_rnn (&drop, in[0], in + 3, NULL, NULL, NULL, true, NULL, NULL);
  bp_rng_seed (7);
  BpTensor *y2 = bp_rnn (&drop, in[0], in + 3, NULL, NULL, NULL, true, NULL, NULL);
  BpTensor *y3 = bp_rnn (&drop, in[0], in + 3, NULL, NULL, NULL, true, NULL, NULL);
  g_assert_cmpmem (y0->data, y0->numel * 4, ye->data, ye->numel * 4);
  g_assert_cmpmem (y1->data, y1->numel * 4, y2->data, y2->numel * 4);
  g_assert_cmpfloat (bp_test_max_rel_err (y1->data, y0->data, y0->numel), >, 1e-3);
  g_assert_cmpfloat (bp_test_max_rel_err (y1->data, y3->data, y0->numel), >, 1e-3);
  /* one layer: nothing to drop */
  BpRnnParams one = drop;
  one.num_layers = 1;
  int64_t state = (int64_t) bp_rng_state ();
  BpTensor *w1[4] = {in[3], in[4], in[5], in[6]};
  BpTensor *y4 = bp_rnn (&one, in[0], w1, NULL, NULL, NULL, true, NULL, NULL);
  g_assert_cmpint ((int64_t) bp_rng_state (), ==, state);
  bp_set_grad_enabled (was);
  BpTensor *all[] = {y0, ye, y1, y2, y3, y4};
  for (gsize k = 0; k < G_N_ELEMENTS (all); k++)
    bp_tensor_unref (all[k]);
  free_inputs (in, n);
}

/* ---- PyTorch: every case's outputs, final states and all gradients, one script ---- */

static const char torch_code[] =
  "from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence\n"
  "def rnn_case(a, mode, I, H, L, bias, bf, bidir, has_h0, has_c0, lengths):\n"
  "    kw = dict(num_layers=L, bias=bias, batch_first=bf, bidirectional=bidir)\n"
  "    if mode == 'LSTM': m = torch.nn.LSTM(I, H, **kw)\n"
  "    elif mode == 'GRU': m = torch.nn.GRU(I, H, **kw)\n"
  "    else: m = torch.nn.RNN(I, H, nonlinearity=mode, **kw)\n"
  "    m = m.double()\n"
  "    ps = list(m.parameters())\n"
  "    x, h0, c0 = a[0], a[1], a[2]\n"
  "    w = a[3:3 + len(ps)]\n"
  "    gy, ghn, gcn = a[3 + len(ps):]\n"
  "    with torch.no_grad():\n"
  "        for p, s in zip(ps, w): p.copy_(s)\n"
  "    inp = x\n"
  "    if lengths is not None:\n"
  "        inp = pack_padded_sequence(x, torch.tensor(lengths), batch_first=bf, enforce_sorted=False)\n"
  "    st = None\n"
  "    if has_h0: st = (h0, c0) if mode == 'LSTM' else h0\n"
  "    if mode == 'LSTM' and st is not None and not has_c0: st = (h0, torch.zeros_like(h0))\n"
  "    y, hs = m(inp, st)\n"
  "    if lengths is not None:\n"
  "        y, _ = pad_packed_sequence(y, batch_first=bf, total_length=x.shape[1 if bf else 0])\n"
  "    hn, cn = hs if mode == 'LSTM' else (hs, torch.zeros_like(hs))\n"
  "    ((y * gy).sum() + (hn * ghn).sum() + (cn * gcn).sum()).backward()\n"
  "    z = lambda t, g: g if g is not None else torch.zeros_like(t)\n"
  "    return [y, hn, cn, x.grad, z(h0, h0.grad), z(c0, c0.grad)] + [p.grad for p in ps]\n"
  "out = []\n";

static void
check_torch_cases (int n_cases, const RnnCase *cases)
{
  static const char *const mode_names[] = {"tanh", "relu", "LSTM", "GRU"};
  GPtrArray *args = g_ptr_array_new_with_free_func ((GDestroyNotify) bp_tensor_unref);
  GPtrArray *got = g_ptr_array_new_with_free_func ((GDestroyNotify) bp_tensor_unref);
  GPtrArray *ref = g_ptr_array_new_with_free_func ((GDestroyNotify) bp_tensor_unref);
  GString *code = g_string_new (torch_code);
  for (int c = 0; c < n_cases; c++) {
    const RnnCase *rc = &cases[c];
    const BpRnnParams *p = &rc->p;
    int n, dirs = p->bidirectional ? 2 : 1, n_w = bp_rnn_n_weights (p);
    BpTensor **in = make_inputs (rc, &n);
    int64_t ss[3] = {(int64_t) p->num_layers * dirs, rc->batch, p->hidden_size};
    /* PyTorch needs tensors in every slot */
    BpTensor *h0 = in[1] ? in[1] : bp_test_rand (3, ss, 0, 0, false);
    BpTensor *c0 = in[2] ? in[2] : bp_test_rand (3, ss, 0, 0, false);
    BpTensor *hn = NULL, *cn = NULL;
    BpTensor *y = bp_rnn (p, in[0], in + 3, in[1], in[2], rc->with_lengths ? rc->lengths : NULL,
                          false, &hn, p->mode == BP_RNN_LSTM ? &cn : NULL);
    g_assert_nonnull (y);
    if (!cn)
      cn = bp_test_rand (3, ss, 0, 0, false);
    BpTensor *gy = bp_test_rand (y->ndim, y->shape, -1, 1, false);
    BpTensor *ghn = bp_test_rand (3, ss, -1, 1, false);
    BpTensor *gcn = bp_test_rand (3, ss, p->mode == BP_RNN_LSTM ? -1 : 0,
                                  p->mode == BP_RNN_LSTM ? 1 : 0, false);
    /* backward of sum (y * gy) + sum (hn * ghn) + sum (cn * gcn) */
    BpTensor *ty = bp_tensor_from_data (y->ndim, y->shape, gy->data);
    BpTensor *prod[3] = {bp_mul (y, ty), NULL, NULL};
    BpTensor *thn = bp_tensor_from_data (3, ss, ghn->data);
    prod[1] = bp_mul (hn, thn);
    int n_prod = 2;
    BpTensor *tcn = NULL;
    if (p->mode == BP_RNN_LSTM) {
      tcn = bp_tensor_from_data (3, ss, gcn->data);
      prod[n_prod++] = bp_mul (cn, tcn);
    }
    BpTensor *sums[3];
    for (int k = 0; k < n_prod; k++)
      sums[k] = bp_sum (prod[k]);
    BpTensor *loss = bp_add (sums[0], sums[1]);
    if (n_prod == 3) {
      BpTensor *l2 = bp_add (loss, sums[2]);
      bp_tensor_unref (loss);
      loss = l2;
    }
    g_assert_cmpint (bp_backward (loss), ==, BP_OK);
    /* outputs: y, hn, cn, dx, dh0, dc0, dw... */
    int base = (int) args->len;
    BpTensor *slots[] = {in[0], h0, c0};
    for (int k = 0; k < 3; k++)
      g_ptr_array_add (args, bp_tensor_ref (slots[k]));
    for (int k = 0; k < n_w; k++)
      g_ptr_array_add (args, bp_tensor_ref (in[3 + k]));
    g_ptr_array_add (args, gy);
    g_ptr_array_add (args, ghn);
    g_ptr_array_add (args, gcn);
    g_ptr_array_add (got, bp_tensor_ref (y));
    g_ptr_array_add (got, bp_tensor_ref (hn));
    g_ptr_array_add (got, bp_tensor_ref (cn));
    BpTensor *grads[3] = {in[0], h0, c0};
    for (int k = 0; k < 3; k++) {
      BpTensor *g = bp_tensor_new_like (grads[k]);
      if (grads[k]->grad)
        memcpy (g->data, grads[k]->grad, (size_t) g->numel * sizeof (float));
      g_ptr_array_add (got, g);
    }
    for (int k = 0; k < n_w; k++) {
      BpTensor *g = bp_tensor_new_like (in[3 + k]);
      memcpy (g->data, in[3 + k]->grad, (size_t) g->numel * sizeof (float));
      g_ptr_array_add (got, g);
    }
    for (guint k = ref->len; k < got->len; k++)
      g_ptr_array_add (ref, bp_tensor_new_like (got->pdata[k]));
    GString *lens = g_string_new ("None");
    if (rc->with_lengths) {
      g_string_assign (lens, "[");
      for (int64_t b = 0; b < rc->batch; b++)
        g_string_append_printf (lens, "%s%lld", b ? ", " : "", (long long) rc->lengths[b]);
      g_string_append (lens, "]");
    }
    g_string_append_printf (code, "out += rnn_case(x[%d:%d], '%s', %lld, %lld, %d, %s, %s, %s, "
                            "%s, %s, %s)\n", base, (int) args->len, mode_names[p->mode],
                            (long long) p->input_size, (long long) p->hidden_size,
                            p->num_layers, p->bias ? "True" : "False",
                            p->batch_first ? "True" : "False",
                            p->bidirectional ? "True" : "False", rc->with_h0 ? "True" : "False",
                            rc->with_c0 ? "True" : "False", lens->str);
    g_string_free (lens, TRUE);
    bp_tape_clear ();
    BpTensor *tmp[] = {ty, thn, tcn, prod[0], prod[1], prod[2], sums[0], sums[1],
                       n_prod == 3 ? sums[2] : NULL, loss, y, hn, cn};
    for (gsize k = 0; k < G_N_ELEMENTS (tmp); k++)
      bp_tensor_unref (tmp[k]);
    if (!in[1])
      bp_tensor_unref (h0);
    if (!in[2])
      bp_tensor_unref (c0);
    free_inputs (in, n);
  }
  if (bp_test_torch (code->str, (int) args->len, (BpTensor **) args->pdata, (int) ref->len,
                     (BpTensor **) ref->pdata)) {
    int at = 0;
    for (int c = 0; c < n_cases; c++) {
      int n_out = 6 + bp_rnn_n_weights (&cases[c].p);
      for (int o = 0; o < n_out; o++, at++) {
        BpTensor *g = got->pdata[at], *r = ref->pdata[at];
        char *what = g_strdup_printf ("case %d (%s) output %d", c, mode_names[cases[c].p.mode], o);
        bp_test_assert_close (what, g->data, r->data, g->numel, o < 3 ? 2e-5 : 1e-4);
        g_free (what);
      }
    }
  }
  g_ptr_array_unref (args);
  g_ptr_array_unref (got);
  g_ptr_array_unref (ref);
  g_string_free (code, TRUE);
}

static void
test_rnn_torch (void)
{
  bp_rng_seed (4);
  RnnCase cases[12];
  int n = 0;
  for (int mode = BP_RNN_TANH; mode <= BP_RNN_GRU; mode++) {
    /* bidirectional, 2 layers, batch_first, initial states */
    RnnCase rc = {.p = {(BpRnnMode) mode, 5, 6, 2, true, true, true, 0.0f}, .batch = 4, .seq = 7};
    rc.with_h0 = true;
    rc.with_c0 = mode == BP_RNN_LSTM;
    cases[n++] = rc;
    /* time-major, 3 layers, no bias, variable lengths, no initial state */
    RnnCase lc = {.p = {(BpRnnMode) mode, 4, 5, 3, false, false, false, 0.0f}, .batch = 4, .seq = 6};
    lc.with_lengths = true;
    int64_t lens[] = {6, 2, 4, 1};
    memcpy (lc.lengths, lens, sizeof lens);
    cases[n++] = lc;
    /* bidirectional with lengths and initial states */
    RnnCase bc = {.p = {(BpRnnMode) mode, 3, 4, 2, true, true, true, 0.0f}, .batch = 5, .seq = 5};
    bc.with_h0 = true;
    bc.with_c0 = mode == BP_RNN_LSTM;
    bc.with_lengths = true;
    int64_t blens[] = {3, 5, 1, 4, 2};
    memcpy (bc.lengths, blens, sizeof blens);
    cases[n++] = bc;
  }
  check_torch_cases (n, cases);
}

/* Forward and backward with one thread and with two agree; two runs give the same bits. */
static void
test_rnn_threads (void)
{
  float *res[3] = {NULL, NULL, NULL};
  int64_t total = 0;
  for (int run = 0; run < 3; run++) {
    bp_set_num_threads (run ? 2 : 1);
    bp_rng_seed (5);
    /* one direction: two threads split the batch rows into blocks (bidirectional stacks run
     * a direction per thread, covered by test-nn's presets with two threads) */
    RnnCase rc = {.p = {BP_RNN_LSTM, 16, 64, 2, true, true, false, 0.2f}, .batch = 300, .seq = 6};
    rc.training = true;
    int n;
    BpTensor **in = make_inputs (&rc, &n);
    BpTensor *y = fwd_rnn (in, &rc);
    BpTensor *gy = bp_test_rand (y->ndim, y->shape, -1, 1, false);
    g_assert_cmpint (bp_backward_with (y, gy->data), ==, BP_OK);
    total = y->numel + in[0]->numel + in[4]->numel;
    g_assert_cmpint (in[4]->numel, ==, 256 * 64); /* weight_hh_l0 */
    res[run] = g_new (float, total);
    memcpy (res[run], y->data, (size_t) y->numel * 4);
    memcpy (res[run] + y->numel, in[0]->grad, (size_t) in[0]->numel * 4);
    memcpy (res[run] + y->numel + in[0]->numel, in[4]->grad, (size_t) in[4]->numel * 4);
    bp_tape_clear ();
    bp_tensor_unref (y);
    bp_tensor_unref (gy);
    free_inputs (in, n);
  }
  /* OpenBLAS's SGEMM itself rounds differently with 1 and 2 threads (measured on bp_linear),
   * so across thread counts the results agree to rounding; a repeat gives the same bits */
  bp_test_assert_close ("rnn with 1 and 2 threads", res[1], res[0], total, 1e-5);
  g_assert_cmpmem (res[1], total * 4, res[2], total * 4);
  for (int k = 0; k < 3; k++)
    g_free (res[k]);
  bp_set_num_threads (1);
}

/* Only h_n used (a classifier on the final state): the gradient still flows. */
static void
test_rnn_state_only (void)
{
  bp_rng_seed (6);
  RnnCase rc = rnn_case (BP_RNN_LSTM, 1, false, true);
  int n;
  BpTensor **in = make_inputs (&rc, &n);
  BpTensor *hn = NULL;
  BpTensor *y = bp_rnn (&rc.p, in[0], in + 3, NULL, NULL, NULL, true, &hn, NULL);
  g_assert_nonnull (hn);
  BpTensor *loss = bp_sum (hn);
  bp_tensor_unref (y); /* the sequence output is dropped by the caller */
  g_assert_cmpint (bp_backward (loss), ==, BP_OK);
  g_assert_nonnull (in[0]->grad);
  g_assert_nonnull (in[4]->grad);
  double norm = 0;
  for (int64_t i = 0; i < in[0]->numel; i++)
    norm += fabs (in[0]->grad[i]);
  g_assert_cmpfloat (norm, >, 0.0);
  bp_tape_clear ();
  bp_tensor_unref (loss);
  bp_tensor_unref (hn);
  free_inputs (in, n);
}

static void
test_rnn_errors (void)
{
  bp_rng_seed (8);
  RnnCase rc = rnn_case (BP_RNN_LSTM, 2, true, true);
  rc.with_h0 = true;
  int n;
  BpTensor **in = make_inputs (&rc, &n);
  BpRnnParams p = rc.p;
  /* wrong feature size */
  BpRnnParams q = p;
  q.input_size = 4;
  g_assert_null (bp_rnn (&q, in[0], in + 3, NULL, NULL, NULL, false, NULL, NULL));
  g_assert_cmpint (bp_last_status (), ==, BP_ERR_INVALID);
  g_assert_nonnull (strstr (bp_last_error (), "[3, 5, 3]"));
  /* a weight of the wrong shape names it */
  BpTensor *saved = in[4];
  in[4] = bp_tensor_new_2d (16, 5);
  g_assert_null (bp_rnn (&p, in[0], in + 3, NULL, NULL, NULL, false, NULL, NULL));
  g_assert_nonnull (strstr (bp_last_error (), "weight_hh_l0"));
  g_assert_nonnull (strstr (bp_last_error (), "[16, 4]"));
  bp_tensor_unref (in[4]);
  in[4] = saved;
  /* initial state of the wrong shape */
  BpTensor *bad = bp_tensor_new (3, (int64_t[]){2, 3, 4});
  g_assert_null (bp_rnn (&p, in[0], in + 3, bad, NULL, NULL, false, NULL, NULL));
  g_assert_nonnull (strstr (bp_last_error (), "[4, 3, 4]"));
  /* c0 for a GRU */
  BpRnnParams gp = p;
  gp.mode = BP_RNN_GRU;
  RnnCase gc = rc;
  gc.p = gp;
  int gn;
  BpTensor **gin = make_inputs (&gc, &gn);
  g_assert_null (bp_rnn (&gp, gin[0], gin + 3, gin[1], gin[1], NULL, false, NULL, NULL));
  g_assert_nonnull (strstr (bp_last_error (), "c0"));
  /* lengths outside [1, T] */
  int64_t lens[3] = {5, 0, 2};
  g_assert_null (bp_rnn (&p, in[0], in + 3, NULL, NULL, lens, false, NULL, NULL));
  g_assert_nonnull (strstr (bp_last_error (), "length 0 of sequence 1"));
  lens[1] = 6;
  g_assert_null (bp_rnn (&p, in[0], in + 3, NULL, NULL, lens, false, NULL, NULL));
  /* bad parameters */
  q = p;
  q.dropout = 1.0f;
  g_assert_null (bp_rnn (&q, in[0], in + 3, NULL, NULL, NULL, false, NULL, NULL));
  q = p;
  q.num_layers = 0;
  g_assert_null (bp_rnn (&q, in[0], in + 3, NULL, NULL, NULL, false, NULL, NULL));
  /* a 2-D input */
  BpTensor *flat = bp_tensor_new_2d (5, 3);
  g_assert_null (bp_rnn (&p, flat, in + 3, NULL, NULL, NULL, false, NULL, NULL));
  g_assert_nonnull (strstr (bp_last_error (), "(B, T, I)"));
  char name[48];
  int64_t shape[2];
  int ndim;
  bp_rnn_weight_info (&p, 7, name, sizeof name, shape, &ndim);
  g_assert_cmpstr (name, ==, "bias_hh_l0_reverse");
  g_assert_cmpint (shape[0], ==, 16);
  g_assert_cmpint (ndim, ==, 1);
  bp_rnn_weight_info (&p, 8, name, sizeof name, shape, &ndim);
  g_assert_cmpstr (name, ==, "weight_ih_l1");
  g_assert_cmpint (shape[1], ==, 8);
  bp_tensor_unref (bad);
  bp_tensor_unref (flat);
  free_inputs (in, n);
  free_inputs (gin, gn);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  bp_set_num_threads (1);
  g_test_add_func ("/rnn/grad", test_rnn_grad);
  g_test_add_func ("/rnn/dropout-grad", test_rnn_dropout_grad);
  g_test_add_func ("/rnn/dropout", test_rnn_dropout);
  g_test_add_func ("/rnn/torch", test_rnn_torch);
  g_test_add_func ("/rnn/threads", test_rnn_threads);
  g_test_add_func ("/rnn/state-only", test_rnn_state_only);
  g_test_add_func ("/rnn/errors", test_rnn_errors);
  return g_test_run ();
}
