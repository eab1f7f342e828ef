/*
 * python.c — finds the interpreter of a pytest stage; see python.h.
 *
 * Why a probe rather than reading the image: the engine resolves a
 * command's name on the container's PATH when it starts it (the image's
 * ENV merged with the stage's env), so letting it try `python`, then
 * `python3`, is the one lookup that agrees with the test run by
 * construction (symlinks, venvs, permissions for the stage's user
 * included).  Whether pytest is installed can only be told by the
 * interpreter itself: site-packages, .pth files, PYTHONPATH and
 * --system-site-packages venvs all decide it.
 */
#include "core/exec/python.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/buf.h"
#include "core/base/error.h"
#include "core/base/xalloc.h"
#include "core/exec/pycache.h"

/* Keep it short and valid for Python 2.7 too: `python` may be Python 2,
 * which must still say what it is.  find_spec does not import. */
const char sp_python_probe_script[] =
	"import os, sys\n"
	"def f(m, d):\n"
	"    try:\n"
	"        import importlib.util\n"
	"        if importlib.util.find_spec(m) is None:\n"
	"            return ''\n"
	"    except ImportError:\n"
	"        try:\n"
	"            import imp\n"
	"            imp.find_module(m)\n"
	"        except Exception:\n"
	"            return ''\n"
	"    except Exception:\n"
	"        return ''\n"
	"    try:\n"
	"        from importlib.metadata import version\n"
	"        return version(d)\n"
	"    except Exception:\n"
	"        return '?'\n"
	"for k, v in (('executable', sys.executable),\n"
	"             ('version', '%d.%d.%d' % tuple(sys.version_info[:3])),\n"
	"             ('pytest', f('pytest', 'pytest')),\n"
	"             ('pytest_cov', f('pytest_cov', 'pytest-cov')),\n"
	"             ('path', os.environ.get('PATH', ''))):\n"
	"    sys.stdout.write('" SP_PYTHON_PROBE_MARK "%s=%s\\n' % (k, v))\n"
	"sys.stdout.flush()\n";

/* Longest value kept from a probe line (a PATH may be long; a hostile
 * image may print anything). */
#define VALUE_MAX 4096

void sp_python_info_release(struct sp_python_info *info)
{
	if (!info)
		return;
	free(info->executable);
	free(info->version);
	free(info->pytest);
	free(info->pytest_cov);
	free(info->path);
	memset(info, 0, sizeof(*info));
}

static void set_value(char **slot, const char *v, size_t len, bool empty_is_null)
{
	free(*slot);
	*slot = NULL;
	if (len > VALUE_MAX)
		len = VALUE_MAX;
	if (len == 0 && empty_is_null)
		return;
	*slot = sp_xstrndup(v, len);
}

void sp_python_info_feed(struct sp_python_info *info, const char *line, size_t len)
{
	static const size_t mlen = sizeof(SP_PYTHON_PROBE_MARK) - 1;
	const char *key, *eq, *val;
	size_t klen, vlen;

	if (len < mlen || memcmp(line, SP_PYTHON_PROBE_MARK, mlen) != 0)
		return;
	key = line + mlen;
	eq = memchr(key, '=', len - mlen);
	if (!eq)
		return;
	klen = (size_t)(eq - key);
	val = eq + 1;
	vlen = len - mlen - klen - 1;
	if (vlen && val[vlen - 1] == '\r')
		vlen--;
	info->seen = true;
#define KEY(s) (klen == sizeof(s) - 1 && !memcmp(key, s, klen))
	if (KEY("executable"))
		set_value(&info->executable, val, vlen, true);
	else if (KEY("version"))
		set_value(&info->version, val, vlen, true);
	else if (KEY("pytest"))
		set_value(&info->pytest, val, vlen, true);
	else if (KEY("pytest_cov"))
		set_value(&info->pytest_cov, val, vlen, true);
	else if (KEY("path"))
		set_value(&info->path, val, vlen, false);
#undef KEY
}

size_t sp_python_candidates(const struct sp_stage *st, const char *out[2])
{
	if (st->python) {
		out[0] = st->python;
		return 1;
	}
	out[0] = "python";
	out[1] = "python3";
	return 2;
}

char *sp_python_image_name(const char *target, const char *image_id)
{
	const char *id = image_id ? image_id : "";

	if (!strncmp(id, "sha256:", 7))
		return sp_xasprintf("the image of target \"%s\" (%.19s)", target ? target : "",
				    id);
	return sp_xasprintf("the image of target \"%s\" (%s)", target ? target : "", id);
}

/* "/usr/bin/python3 (Python 3.11.2, python3 on the image's PATH)" */
static void who(struct sp_buf *b, const struct sp_python_info *info, const struct sp_stage *st,
		const char *candidate)
{
	(void)sp_buf_addf(b, "%s (", info->executable ? info->executable : candidate);
	if (info->version)
		(void)sp_buf_addf(b, "Python %s, ", info->version);
	if (st->python)
		(void)sp_buf_addf(b, "the stage's python: %s)", candidate);
	else
		(void)sp_buf_addf(b, "%s on the image's PATH)", candidate);
}

int sp_python_check(const struct sp_python_info *info, const struct sp_stage *st,
		    const char *candidate, const char *image, struct sp_error *err)
{
	struct sp_buf b = SP_BUF_INIT;
	int rc = 0;

	if (!info->seen)
		return 0;
	if (!info->pytest) {
		(void)sp_buf_addf(&b, "no pytest in %s: ", image);
		who(&b, info, st, candidate);
		(void)sp_buf_addf(&b, " cannot import pytest; install pytest in that target%s",
				  st->python ? ", or point python: at an interpreter that has it" :
				  ", or set python: in stage \"");
		if (!st->python)
			(void)sp_buf_addf(&b, "%s\" to an interpreter that has it", st->name);
		rc = sp_error_set(err, SP_EFAILED, "%s", b.data);
	} else if (!info->pytest_cov && sp_stage_measures_coverage(st)) {
		(void)sp_buf_addf(&b, "--cov needs the pytest-cov plugin, which ");
		who(&b, info, st, candidate);
		(void)sp_buf_addf(&b, " in %s cannot import; install pytest-cov in that target, "
				  "or drop --cov (and coverage.min) from stage \"%s\"", image,
				  st->name);
		rc = sp_error_set(err, SP_EFAILED, "%s", b.data);
	}
	sp_buf_release(&b);
	return rc;
}

int sp_python_not_found(const struct sp_stage *st, const char *image, const char *why,
			const char *python2, struct sp_error *err)
{
	const char *exec_ = why ? strstr(why, "exec: ") : NULL;
	size_t len;

	/* of the runtime's long story, the part that says what went wrong:
	 * `exec: "X": executable file not found in $PATH` */
	if (exec_)
		why = exec_;
	len = why ? strlen(why) : 0;
	if (exec_ && len > 9 && !strcmp(why + len - 9, ": unknown"))
		len -= 9;
	if (st->python)
		return sp_error_set(err, SP_EFAILED, "cannot start python: %s (stage \"%s\") in %s%s%.*s",
				    st->python, st->name, image, why ? ": " : "", (int)len,
				    why ? why : "");
	if (python2)
		return sp_error_set(err, SP_EFAILED, "no Python 3 in %s: python is Python %s and "
				    "python3 cannot be started from its PATH; install Python 3 in "
				    "that target, or set python: in stage \"%s\" to the interpreter's "
				    "absolute path", image, python2, st->name);
	return sp_error_set(err, SP_EFAILED, "no Python in %s: neither python nor python3 "
			    "can be started from its PATH; install Python in that target, or set "
			    "python: in stage \"%s\" to the interpreter's absolute path", image,
			    st->name);
}

char *sp_python_describe(const struct sp_python_info *info, const struct sp_stage *st,
			 const char *candidate)
{
	struct sp_buf b = SP_BUF_INIT;

	(void)sp_buf_addf(&b, "python: ");
	if (!info->seen) {
		(void)sp_buf_addf(&b, "%s (%s; the probe said nothing about it)", candidate,
				  st->python ? "the stage's python:" : "on the image's PATH");
		return sp_buf_detach(&b, NULL);
	}
	who(&b, info, st, candidate);
	(void)sp_buf_addf(&b, ", pytest %s", info->pytest ? info->pytest : "missing");
	if (info->pytest_cov)
		(void)sp_buf_addf(&b, ", pytest-cov %s", info->pytest_cov);
	if (info->cached)
		(void)sp_buf_addf(&b, " (probed before)");
	return sp_buf_detach(&b, NULL);
}

/* ---- driving the runner ---- */

/* The probe's own output is for us, not for the stage's log. */
static void on_probe_line(void *ud, enum sp_log_stream stream, const char *line, size_t len)
{
	if (stream == SP_STREAM_STDOUT)
		sp_python_info_feed(ud, line, len);
}

int sp_python_find(struct sp_runner *runner, const struct sp_run_opts *base,
		   const struct sp_stage *st, const char *target, char **out,
		   struct sp_python_info *info, struct sp_error *err)
{
	const char *cands[2];
	size_t n = sp_python_candidates(st, cands), i;
	char *image = sp_python_image_name(target, base->image);
	char why[SP_ERROR_MSG_MAX] = "", py2[32] = "";
	int rc = 0;

	*out = NULL;
	for (i = 0; i < n; i++) {
		const char *argv[3] = { cands[i], "-c", sp_python_probe_script };
		struct sp_run_opts ro = *base;
		struct sp_run_result res;

		ro.cmd = argv;
		ro.ncmd = 3;
		ro.network = SP_NETWORK_NONE;
		ro.reports_dir = NULL;
		ro.reports_dest = NULL;
		ro.log = on_probe_line;
		ro.log_ud = info;
		ro.mask = NULL;
		sp_python_info_release(info);
		sp_error_clear(err);
		rc = runner->ops->run(runner, &ro, &res, err);
		if (rc == SP_EFAILED) {
			/* cannot start: not on PATH (or not executable); the next one */
			snprintf(why, sizeof(why), "%s", err->msg);
			continue;
		}
		if (rc < 0)
			goto out;
		/* a `python` that is Python 2 (python-is-python2, old images) is
		 * not what a pytest of today runs on: python3 next */
		if (i + 1 < n && info->version && !strncmp(info->version, "2.", 2)) {
			snprintf(py2, sizeof(py2), "%s", info->version);
			continue;
		}
		if ((rc = sp_python_check(info, st, cands[i], image, err)) < 0)
			goto out;
		*out = sp_xstrdup(cands[i]);
		goto out;
	}
	sp_error_clear(err);
	sp_python_info_release(info);
	rc = sp_python_not_found(st, image, *why ? why : NULL, *py2 ? py2 : NULL, err);
out:
	free(image);
	return rc;
}

int sp_python_find_cached(struct sp_runner *runner, const struct sp_run_opts *base,
			  const struct sp_stage *st, const char *target, const char *cache_dir,
			  char **out, struct sp_python_info *info, struct sp_error *err)
{
	char key[SP_PYCACHE_KEY_LEN + 1];
	struct sp_error ignored = SP_ERROR_INIT;
	char *image, *content = NULL;
	int rc;

	if (!cache_dir || !base->image)
		return sp_python_find(runner, base, st, target, out, info, err);
	*out = NULL;
	/* the image's content, not its id: every build has its job's label */
	if (runner->ops->image_key &&
	    runner->ops->image_key(runner, base->image, &content, &ignored) < 0)
		return sp_python_find(runner, base, st, target, out, info, err);
	sp_pycache_key(key, content ? content : base->image, st, base->env, base->nenv);
	free(content);
	sp_python_info_release(info);
	if (sp_pycache_get(cache_dir, key, out, info) == 1) {
		info->cached = true;
		image = sp_python_image_name(target, base->image);
		rc = sp_python_check(info, st, *out, image, err);
		free(image);
		if (rc < 0) {
			free(*out);
			*out = NULL;
		}
		return rc;
	}
	rc = sp_python_find(runner, base, st, target, out, info, err);
	if (rc == 0 && info->seen)
		(void)sp_pycache_put(cache_dir, key, *out, info, &ignored);
	return rc;
}
