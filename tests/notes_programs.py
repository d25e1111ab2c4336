"""The programs of the notes (/work/shared/notes/000_0784d693215f1405.txt, a
multiprocessing tutorial: daemons, mutexes, IPC, producer/consumer), copied
as written: indentation and straight quotes restored, nothing else changed
except

* each ``if __name__ == '__main__':`` body became a function ``<prog>_main(state)``
  (run as the single top-level task, in patch mode);
* the programs share this module, so their functions carry a prefix
  (``daemon_task`` for the daemon demo's ``task``...);
* the ticket sale opens ``TICKET`` (a file in a temporary directory) instead of
  ``'ticket.json'``.

Module level so that every start method can import them.
"""
import json
import os
import random
import tempfile
import time
from multiprocessing import Lock, Manager, Process, Queue

# -- 1. the daemon demo ------------------------------------------------------------


def daemon_task():
    print('老了。。。。')
    time.sleep(2)
    print('睡了一会。。')


def daemon_main(state):
    print('长大了。。。。')
    p = Process(target=daemon_task)
    p.daemon = True
    # 一定要在p.start()前设置,设置p为守护进程,禁止p创建子进程,并且父进程代码执行结束,p即终止运行
    p.start()
    time.sleep(2)
    print('关闭了。。。。')

    p.terminate()


# -- 2. the join version -----------------------------------------------------------


def join_task1():
    print('你好,阿森。。。')
    time.sleep(3)
    print('吃饭')
    time.sleep(3)
    print('下雨')


def join_task2():
    print('你好,阿三。。。')
    time.sleep(3)
    print('吃面')
    time.sleep(3)
    print('下雪')


def join_task3():
    print('你好,阿四。。。')
    time.sleep(3)
    print('吃米')
    time.sleep(3)
    print('下冰雹')


def join_main(state):
    p1 = Process(target=join_task1)
    p2 = Process(target=join_task2)
    p3 = Process(target=join_task3)

    p1.start()
    p1.join()
    p2.start()
    p2.join()
    p3.start()
    p3.join()


# -- 3. the lock version -----------------------------------------------------------


def lock_task1(lock):
    # 上锁
    lock.acquire()  # 就等同于一个if判断
    print('你好,阿森。。。')
    time.sleep(random.randint(0, 3))
    print('吃饭')
    time.sleep(random.randint(0, 3))
    print('下雨')
    # 解锁
    lock.release()


def lock_task2(lock):
    lock.acquire()
    print('你好,阿三。。。')
    time.sleep(random.randint(0, 3))
    print('吃面')
    time.sleep(random.randint(0, 3))
    print('下雪')
    lock.release()


def lock_task3(lock):
    lock.acquire()
    print('你好,阿四。。。')
    time.sleep(random.randint(0, 3))
    print('吃米')
    time.sleep(random.randint(0, 3))
    print('下冰雹')
    lock.release()


def lock_main(state):
    lock = Lock()
    p1 = Process(target=lock_task1, args=(lock,))
    p2 = Process(target=lock_task2, args=(lock,))
    p3 = Process(target=lock_task3, args=(lock,))

    p1.start()
    p2.start()
    p3.start()


# -- 4. the double acquire (注意1) ---------------------------------------------------
# As written in the notes the second acquire follows a release, so the program
# ends holding the lock; double_acquire_unreleased_main is the mistake the
# note warns about (the release left out).


def double_acquire_main(state):
    l = Lock()  # noqa: E741
    l.acquire()
    print('抢到了')
    l.release()

    l.acquire()
    print('接着抢')


def double_acquire_unreleased_main(state):
    l = Lock()  # noqa: E741
    l.acquire()
    print('抢到了')

    l.acquire()
    print('接着抢')


# -- 5. the ticket sale ------------------------------------------------------------

TICKET = os.path.join(
    tempfile.gettempdir(),
    f"races-notes-{os.getpgrp()}-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}",
    "ticket.json",
)


def ticket_setup():
    os.makedirs(os.path.dirname(TICKET), exist_ok=True)
    with open(TICKET, 'wt', encoding='utf-8') as a:
        json.dump({"count": 1}, a)


def check_ticket():
    with open(TICKET, 'rt', encoding='utf-8')as a:
        data = json.load(a)
    time.sleep(random.randint(0, 3))
    print('%s正在查票,票还有%s' % (os.getpid(), data["count"]))


def buy_ticket():
    with open(TICKET, 'rt', encoding='utf-8')as a:
        data = json.load(a)
    if data["count"] > 0:
        data["count"] -= 1
        # 模拟延迟
        time.sleep(random.randint(0, 3))
        with open(TICKET, 'wt', encoding='utf-8')as a:
            json.dump(data, a)
        print('%s恭喜你抢票成功' % os.getpid())

    else:
        print('%s抢票失败,开个加速包试一试' % os.getpid())


def ticket_task(lock):
    check_ticket()
    lock.acquire()
    buy_ticket()
    lock.release()


def ticket_main(state):

    lock = Lock()
    # 三个人抢票
    for i in range(10):
        p = Process(target=ticket_task, args=(lock,))
        p.start()


# -- 6. the Manager dict -----------------------------------------------------------


# 传参给父进程
def manager_task(data, l):  # noqa: E741
    # 上锁
    l.acquire()
    num = data['num']
    time.sleep(0.1)
    # 时间过长,子进程就会死掉
    data['num'] = num - 1
    # 解锁
    l.release()


def manager_main(state):
    # 让Manager开启一个共享的字典
    m = Manager()
    data = m.dict({'num': 10})

    l = Lock()  # noqa: E741
    for i in range(10):
        p = Process(target=manager_task, args=(data, l))
        p.start()  # 创建子进程

    time.sleep(2)
    print(data)


# -- 7. the Queue(3) demo ----------------------------------------------------------


def queue_main(state):
    q = Queue(3)
    # 存储元素
    q.put('123')
    q.put('qwe')
    q.put('利物浦')

    print(q.get())
    q.put('句柄hi')
    # 如果容量已经满了,在调用put时将进入阻塞状态 直到有人从队列中拿走数据有空位置 才会继续执行

    # 取出元素
    print(q.get())
    print(q.get())
    print(q.get())

    q.get(block=True, timeout=2)


# -- 8. producer / consumer ----------------------------------------------------------


def make_rose(q):
    for i in range(6):
        print('%s个青椒炒鸡蛋制作完成' % i)
        rose = '%s个青椒炒鸡蛋' % i
        # 将生成完成的数据放入队列中
        q.put(rose)


def eat(q):
    for i in range(6):
        rose = q.get()
        time.sleep(random.randint(0, 3))
        print(rose, '吃完了')


def producer_consumer_main(state):
    q = Queue()
    make_p = Process(target=make_rose, args=(q,))
    eat_p = Process(target=eat, args=(q,))

    make_p.start()
    eat_p.start()
